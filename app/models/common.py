"""Columns every table shares, and the place columns that make a table scoped."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, TypedDict

from pydantic import AfterValidator
from pydantic import Field as PydanticField
from sqlalchemy import String
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Field, SQLModel
from sqlmodel._compat import finish_init, is_table_model_class

from app.core.db import UTCDateTime, new_id, utcnow
from app.models.formats import AREA_CODE_PATTERN, VILLAGE_CODE_PATTERN

AREA_CODE_RE = re.compile(r"^[0-9]{12}$")  # ASCII only: \d accepts full-width digits


def _check_area_code(v: str) -> str:
    if not AREA_CODE_RE.match(v):
        raise ValueError("must be a 12-digit area code")
    return v


def _check_village_code(v: str) -> str:
    _check_area_code(v)
    if v.endswith("000"):
        raise ValueError("must be a village code (12 digits, last 3 not 000)")
    return v


AreaCode = Annotated[
    str, AfterValidator(_check_area_code), PydanticField(json_schema_extra={"pattern": AREA_CODE_PATTERN})
]
VillageCode = Annotated[
    str,
    AfterValidator(_check_village_code),
    PydanticField(json_schema_extra={"pattern": VILLAGE_CODE_PATTERN}),
]

_IMMUTABLE = (type(None), bool, int, float, str, bytes, uuid.UUID, date, datetime, Enum)


@dataclass(frozen=True)
class _Slot:
    name: str
    alias: str | None
    factory: Callable[[], Any] | None
    default: Any
    has_default: bool
    attr: Any  # the SQLAlchemy instrumented attribute, None if the field is not mapped


_PLANS: dict[type, list[_Slot] | None] = {}


def _plan(cls: type[SQLModel]) -> list[_Slot] | None:
    """How to construct a table model fast; None when it needs SQLModel's own path
    (relationships, post-init hooks, extra fields, factories that take the validated data)."""
    if cls in _PLANS:
        return _PLANS[cls]
    configure_mappers()  # attribute implementations exist once the mappers are configured
    plan: list[_Slot] | None = []
    manager = manager_of_class(cls)
    if (
        cls.__sqlmodel_relationships__
        or cls.__pydantic_post_init__
        or cls.model_config.get("extra") == "allow"
    ):
        plan = None
    else:
        for name, field in cls.model_fields.items():
            if field.default_factory is not None and field.default_factory_takes_validated_data:
                plan = None
                break
            assert plan is not None
            plan.append(
                _Slot(
                    name=name,
                    alias=field.alias,
                    factory=field.default_factory,  # type: ignore[arg-type]
                    default=field.default,
                    has_default=not field.is_required(),
                    attr=manager[name] if name in manager else None,
                )
            )
    _PLANS[cls] = plan
    return plan


class IdMixin(SQLModel):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)

    def __init__(__pydantic_self__, **data: Any) -> None:  # noqa: N805 (SQLModel's convention)
        """Table models are built without validation (SQLModel's behaviour); this does what
        ``sqlmodel_table_construct`` does with a per-class plan instead of re-inspecting every
        field's default factory and going through ``__setattr__`` per field: building a batch
        of 200 synced visits spent a third of its time there. Same result (a test compares
        both paths on every table model)."""
        cls = type(__pydantic_self__)
        plan = _plan(cls) if is_table_model_class(cls) and finish_init.get() else None
        if plan is None:
            super().__init__(**data)
            return
        self = __pydantic_self__
        state = instance_state(self)
        dict_ = self.__dict__
        fields_set: set[str] = set()
        for slot in plan:
            if slot.alias and slot.alias in data:
                value = data.pop(slot.alias)
                fields_set.add(slot.name)
            elif slot.name in data:
                value = data.pop(slot.name)
                fields_set.add(slot.name)
            elif slot.factory is not None:
                value = slot.factory()
            elif slot.has_default:
                value = slot.default if isinstance(slot.default, _IMMUTABLE) else deepcopy(slot.default)
            else:
                continue
            if slot.attr is not None:
                slot.attr.impl.set(state, dict_, value, None)
            else:
                dict_[slot.name] = value
        object.__setattr__(self, "__pydantic_fields_set__", fields_set)
        object.__setattr__(self, "__pydantic_extra__", None)
        object.__setattr__(self, "__pydantic_private__", None)


class TimestampMixin(SQLModel):
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class VersionedMixin(TimestampMixin):
    version: int = Field(default=1, nullable=False)


class ScopedMixin(SQLModel):
    """A record's place. Scope filters compare exactly one of these with the caller's area.

    Always set through ``place_columns(village_code)``; never typed by clients.
    """

    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    township_code: str = Field(sa_type=String(9), index=True, nullable=False)
    village_code: str = Field(sa_type=String(12), index=True, nullable=False)


class Place(TypedDict):
    county_code: str
    township_code: str
    village_code: str


def place_columns(village_code: str) -> Place:
    return {
        "county_code": village_code[:6],
        "township_code": village_code[:9],
        "village_code": village_code,
    }
