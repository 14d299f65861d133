"""Imports every table module so the metadata is complete (Alembic, tests)."""

from app.models import (  # noqa: F401
    areas,
    audit,
    auth,
    checkups,
    claims,
    households,
    migrants,
    sync,
    users,
    visits,
)
