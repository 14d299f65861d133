"""Which role may use which endpoint. A role that may never use an endpoint gets 403
``forbidden`` (scope is separate: out of scope is 404)."""

from __future__ import annotations

from app.authz.actor import Actor
from app.core.errors import Forbidden
from app.models.users import Role

FIELD_ROLES = (Role.village, Role.township, Role.county, Role.admin)
SUPERVISOR_ROLES = (Role.township, Role.county, Role.admin)
COUNTY_ROLES = (Role.county, Role.admin)
ADMIN_ROLES = (Role.admin,)


def require_role(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        raise Forbidden("Your role may not do this")
