"""Who is calling: the authenticated principal, its role and its area prefix (scope)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.models.users import Role


def scope_prefix(area_code: str) -> str:
    """12-digit area code → the prefix that defines its scope (6, 9 or 12 digits)."""
    if area_code[6:] == "000000":
        return area_code[:6]
    if area_code[9:] == "000":
        return area_code[:9]
    return area_code


@dataclass(frozen=True)
class Actor:
    id: uuid.UUID
    kind: str  # "user" | "client"
    role: Role
    area_code: str
    session_id: uuid.UUID
    username: str = ""
    display_name: str = ""

    @property
    def prefix(self) -> str:
        return scope_prefix(self.area_code)

    @property
    def county_code(self) -> str:
        return self.area_code[:6]

    @property
    def is_machine(self) -> bool:
        return self.role in (Role.partner, Role.dashboard)

    def covers(self, village_code: str) -> bool:
        """Is a record placed in this village inside the caller's scope?"""
        return village_code.startswith(self.prefix)
