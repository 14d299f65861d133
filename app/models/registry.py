"""Imports every table module so the metadata is complete (Alembic, tests)."""

from app.models import areas, audit, auth, households, migrants, sync, users, visits  # noqa: F401
