"""A queue on the 工作台 (home) page: what is waiting, how many, and the list that holds it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    key: str  # stable, for tests and the page's element ids
    label: str  # 待审核申领
    count: int
    href: str  # the list that holds the items
    hint: str = ""  # one line: what to do with them
