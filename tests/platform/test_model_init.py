"""Table models are constructed by a per-class plan (``IdMixin.__init__``) instead of SQLModel's
field-by-field path; both must give the same object for every table model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel

from app.models import common
from app.models.common import IdMixin

TABLE_MODELS = sorted(
    (
        m.class_
        for m in SQLModel._sa_registry.mappers  # type: ignore[attr-defined]
        if issubclass(m.class_, IdMixin)
    ),
    key=lambda c: c.__name__,
)


def _state(obj: object) -> dict[str, object]:
    return {k: v for k, v in obj.__dict__.items() if k != "_sa_instance_state"}


def _slow(cls: type, **data: object) -> object:
    saved = common._PLANS.get(cls, "missing")
    common._PLANS[cls] = None  # no plan: SQLModel's own construction
    try:
        return cls(**data)
    finally:
        if saved == "missing":
            del common._PLANS[cls]
        else:
            common._PLANS[cls] = saved  # type: ignore[assignment]


def test_every_table_model_has_a_fast_plan():
    assert len(TABLE_MODELS) > 20
    assert all(common._plan(cls) is not None for cls in TABLE_MODELS)


@pytest.mark.parametrize("cls", TABLE_MODELS, ids=lambda c: c.__name__)
def test_fast_construction_equals_sqlmodels(cls):
    fixed = {"id": uuid.UUID(int=7)}
    for stamp in ("created_at", "updated_at"):
        if stamp in cls.model_fields:
            fixed[stamp] = datetime(2026, 1, 2, tzinfo=UTC)
    fast, slow = cls(**fixed), _slow(cls, **fixed)
    assert fast.__pydantic_fields_set__ == slow.__pydantic_fields_set__ == set(fixed)
    f, s = _state(fast), _state(slow)
    assert f.keys() == s.keys()
    for key in f:
        factory = cls.model_fields[key].default_factory
        if factory is None or key in fixed:
            assert f[key] == s[key], key
        else:
            assert type(f[key]) is type(s[key]), key
    # the ORM sees the same pending changes (what the flush inserts)
    fi, si = inspect(fast), inspect(slow)
    for attr in fi.mapper.column_attrs:
        assert fi.attrs[attr.key].history.added == si.attrs[attr.key].history.added or (
            cls.model_fields.get(attr.key) is not None
            and cls.model_fields[attr.key].default_factory is not None
            and attr.key not in fixed
        ), attr.key
    assert fast.model_dump().keys() == slow.model_dump().keys()
