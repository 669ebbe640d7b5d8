"""The envelope every partner event carries, and the bridge from a JSON model to its Avro record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.codec import Codec
from schemas.errors import UnknownSchemaError
from schemas.fields import ShortText

__all__ = ["FUTURE_TOLERANCE", "NOW", "EventModel"]

#: How far ahead of the receiver's clock an event may claim to have happened.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Validation-context key overriding "now" for the future check (tests, replays).
NOW = "now"
# Context key set by from_avro: a decoded record was checked when it was ingested,
# and replaying it later must not fail on the clock.
_TRUSTED = "trusted"


def _schema_version(record: str) -> int:
    try:
        return Codec.default().registry.current_version(record)
    except UnknownSchemaError:
        return 1


class EventModel(BaseModel):
    """What every partner event carries, and the bridge to its Avro record."""

    # hide_input_in_errors: a ValidationError's text gets logged, and inputs
    # carry contact details; errors() still holds the input for the caller.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True
    )

    RECORD: ClassVar[str]
    """Avro record name."""
    TOPIC: ClassVar[str]
    """Base topic name (see ``schemas.catalog``)."""

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime
    source: ShortText

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        context = info.context if isinstance(info.context, Mapping) else {}
        if not context.get(_TRUSTED):
            now = context.get(NOW) or datetime.now(UTC)
            if value > now + FUTURE_TOLERANCE:
                raise ValueError(
                    f"occurred_at is more than {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes"
                    f" ahead of now ({now.isoformat()})"
                )
        # Avro holds UTC milliseconds: hold the same instant here, so that a model
        # survives the trip through Kafka unchanged.
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:30+01:00: before the first instant UTC holds
            raise ValueError("occurred_at is before year 1 in UTC") from None
        return value.replace(microsecond=value.microsecond - value.microsecond % 1000)

    def key(self) -> str:
        """The Kafka key of this event (what its topic is partitioned by)."""
        raise NotImplementedError

    def to_avro(self) -> dict[str, Any]:
        """The datum for ``Codec.encode(self.RECORD, ...)``."""
        datum = self.model_dump(exclude={"type"})
        datum["event_id"] = str(self.event_id)
        datum["schema_version"] = _schema_version(self.RECORD)
        for name, value in datum.items():
            if isinstance(value, tuple):
                datum[name] = list(value)
        return datum

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> Self:
        """The model of a decoded datum (no clock check: it was checked on ingest)."""
        fields = {name: value for name, value in datum.items() if name != "schema_version"}
        fields["type"] = cls.model_fields["type"].default
        return cls.model_validate(fields, context={_TRUSTED: True})
