"""task titles in two languages

``task.title_en``: the English title beside ``task.title`` (Chinese, the default language),
both rendered from the message catalogue when the task is opened (app/services/tasks.py says
why both are stored rather than a kind and parameters). Existing tasks keep their one title,
which both languages then show; a visit follow-up's title is the cadre's own note in both.

Revision ID: b15a00000007
Revises: b14a00000007
Create Date: 2026-12-07 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b15a00000007"
down_revision: str | None = "b14a00000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task", sa.Column("title_en", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("title_en")
