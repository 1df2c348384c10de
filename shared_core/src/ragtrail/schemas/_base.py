"""Shared pydantic base and helpers for the stored records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


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
