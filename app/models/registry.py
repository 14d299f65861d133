"""Imports every table module so the metadata is complete (Alembic, tests)."""

from app.models import areas, audit, auth, users  # noqa: F401
