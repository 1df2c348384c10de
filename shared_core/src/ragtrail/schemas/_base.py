"""Shared pydantic base and helpers for the stored records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr


class Model(BaseModel):
    """Base of every ragtrail schema: strict field names, dumps that can drop None."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        use_enum_values=False,
        validate_assignment=False,
    )

    def dump(self, *, exclude_none: bool = True) -> dict[str, Any]:
        """JSON-ready dict of this record; None fields are left out by default."""
        return self.model_dump(mode="json", exclude_none=exclude_none)


def to_utc(value: datetime | None) -> datetime | None:
    """Make a timestamp timezone-aware UTC with microsecond precision (naive = UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _utc_required(value: datetime) -> datetime:
    result = to_utc(value)
    return value if result is None else result


#: A datetime stored as timezone-aware UTC (naive values are taken as UTC). Only the
#: datetime fields pay for the conversion: records are validated again on spool replay.
UtcDateTime = Annotated[datetime, AfterValidator(_utc_required)]


class UtcModel(Model):
    """A model whose datetime fields are declared as :data:`UtcDateTime`."""


_M = TypeVar("_M", bound=BaseModel)


#: Per model class: every field with its default (in field order), the fields whose
#: default comes from a factory, and the private attributes' defaults.
_Plan = tuple[dict[str, Any], tuple[tuple[str, Any], ...], dict[str, Any]]
_PLANS: dict[type, _Plan] = {}


def _plan(cls: type[BaseModel]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        defaults = {name: info.default for name, info in cls.model_fields.items()}
        factories = tuple((name, info.default_factory)
                          for name, info in cls.model_fields.items()
                          if info.default_factory is not None)
        private = {name: attr.get_default() for name, attr in cls.__private_attributes__.items()}
        plan = _PLANS[cls] = (defaults, factories, private)
    return plan


def _fast_construct(cls: type[_M], values: dict[str, Any]) -> _M:
    defaults, factories, private = _plan(cls)
    data = defaults.copy()  # field order, like pydantic's
    data.update(values)
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", dict(private) if private else None)
    return obj


def _fast_construct_works() -> bool:
    """The shortcut must give exactly what pydantic's model_construct gives."""

    class Probe(Model):
        a: int
        b: list[int] = Field(default_factory=list)
        c: str = "c"
        _p: int = PrivateAttr(default=7)

    try:
        fast = _fast_construct(Probe, {"a": 1})
        slow = Probe.model_construct(a=1)
        return (fast == slow and fast._p == 7 and fast.model_dump() == slow.model_dump()
                and fast.model_fields_set == slow.model_fields_set)
    except Exception:
        return False


_FAST = _fast_construct_works()


def construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` for values this package made itself.

    No validation, like model_construct, without its per-field bookkeeping (a Run:
    2 us instead of 14 us). Falls back to model_construct if this pydantic version's
    instances look different (checked once at import).
    """
    if _FAST:
        return _fast_construct(cls, values)
    return cls.model_construct(**values)
