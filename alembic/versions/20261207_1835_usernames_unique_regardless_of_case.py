"""usernames unique regardless of case

A unique index on ``lower(username)``: ``Admin`` cannot be created beside ``admin``, and the
case-insensitive login (``ADMIN`` logs in as ``admin``) reads this index.

If the table already holds usernames that differ only in case, the upgrade stops with an error
saying how many there are and how to list them; rename or disable-and-rename one of each pair
(``PATCH /users`` cannot rename: do it in SQL, then tell the person) and run it again. Nothing is
changed automatically: which account keeps the name is a human decision.

Revision ID: b14a00000005
Revises: b14a00000004
Create Date: 2026-12-01 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b14a00000005"
down_revision: str | None = "b14a00000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUPLICATES = 'SELECT lower(username) FROM "user" GROUP BY lower(username) HAVING count(*) > 1'
LIST_THEM = f'SELECT username FROM "user" WHERE lower(username) IN ({DUPLICATES}) ORDER BY 1'  # noqa: S608


def upgrade() -> None:
    count = f"SELECT count(*) FROM ({DUPLICATES}) AS d"  # noqa: S608 (constant text, no input)
    clashes = op.get_bind().execute(sa.text(count)).scalar_one()
    if clashes:
        raise RuntimeError(
            f"{clashes} username(s) exist in more than one letter case; usernames must be unique "
            f"without regard to case. List them with: {LIST_THEM}; rename one account of each "
            "group, then migrate again."
        )
    op.create_index("uq_user_lower_username", "user", [sa.text("lower(username)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_user_lower_username", table_name="user")
