"""Imports every table module so the metadata is complete (Alembic, tests)."""

from app.models import (  # noqa: F401
    areas,
    audit,
    auth,
    checkups,  # noqa: F401,E402
    claims,  # noqa: F401,E402
    households,
    imports,
    indicators,
    migrants,
    sync,
    users,
    visits,
    web,
)
