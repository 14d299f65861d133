"""Imports every table module so the metadata is complete (Alembic, tests)."""

from app.models import areas, audit, auth, households, migrants, sync, users, visits  # noqa: F401
from app.models import checkups  # noqa: F401,E402
from app.models import claims  # noqa: F401,E402
