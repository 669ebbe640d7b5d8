"""The JSON face of the partner events: pydantic models of the Avro records, with the domain checks.

Partners POST these as JSON; the ingest validates them here, then writes
``model.to_avro()`` with the codec. Each model names its Avro record and its
topic, and the Kafka key it is partitioned by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from schemas import catalog
from schemas.codec import Codec
from schemas.errors import UnknownSchemaError
from schemas.identifiers import is_valid_naf, is_valid_siren
from schemas.reference import CATEGORIES, DEPARTEMENTS, MODULES

__all__ = [
    "EVENT_ADAPTER",
    "FUTURE_TOLERANCE",
    "MODELS_BY_RECORD",
    "NOW",
    "REJECT_REASONS",
    "BusinessEnrolled",
    "BusinessName",
    "CategorySlug",
    "DepartementCode",
    "EmailAddress",
    "Event",
    "EventModel",
    "LeadAnswered",
    "LeadId",
    "ModuleCompleted",
    "ModuleId",
    "NafCode",
    "OfferRequested",
    "RejectReason",
    "ResellerId",
    "ResellerProfile",
    "Siren",
    "parse_event",
]

#: How far ahead of the receiver's clock an event may claim to have happened.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Validation-context key overriding "now" for the future check (tests, replays).
NOW = "now"
# Context key set by from_avro: a decoded record was checked when it was ingested,
# and replaying it later must not fail on the clock.
_TRUSTED = "trusted"


# -- field types: each check once, reused by every model and by other packages --


def _check_siren(value: str) -> str:
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise ValueError(f"SIREN {value!r} must be exactly 9 digits")
    if not is_valid_siren(value):
        raise ValueError(f"SIREN {value} fails its Luhn check")
    return value


def _check_departement(value: str) -> str:
    code = value.upper()  # "2a" is a common spelling of "2A"
    if code not in DEPARTEMENTS:
        raise ValueError(f"{value!r} is not a département code (01-95, 2A, 2B, 971-976)")
    return code


def _check_naf(value: str) -> str:
    code = value.upper()
    if not is_valid_naf(code):
        raise ValueError(f"NAF code {value!r} must read NN.NNL, e.g. 47.11D")
    return code


_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


def _check_email(value: str) -> str:
    match = _EMAIL.fullmatch(value)
    # The message never repeats the address: it is personal data and errors get logged.
    if match is None or len(value) > 254 or len(match["local"]) > 64:
        raise ValueError("not a valid e-mail address")
    # Domains are case-insensitive; the local part may not be, so it is kept as given.
    return f"{match['local']}@{match['domain'].lower()}"


def _check_module(value: str) -> str:
    if value not in MODULES:
        raise ValueError(f"unknown module {value!r}")
    return value


def _check_category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown offer category {value!r}; known: {', '.join(CATEGORIES)}")
    return value


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    # A repeated entry would count twice nowhere useful; keep the first, in order.
    return tuple(dict.fromkeys(values))


Siren = Annotated[str, AfterValidator(_check_siren)]
DepartementCode = Annotated[str, AfterValidator(_check_departement)]
NafCode = Annotated[str, AfterValidator(_check_naf)]
EmailAddress = Annotated[str, AfterValidator(_check_email)]
ModuleId = Annotated[str, AfterValidator(_check_module)]
CategorySlug = Annotated[str, AfterValidator(_check_category)]
BusinessName = Annotated[str, Field(min_length=1, max_length=200)]
ResellerId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
LeadId = Annotated[str, Field(min_length=1, max_length=128)]
_ShortText = Annotated[str, Field(min_length=1, max_length=64)]

RejectReason = Literal[
    "budget",
    "no_customer_response",
    "other_vendor",
    "requirement_not_met",
    "not_a_customer",
    "timeline_too_short",
    "spam",
    "other",
]
#: The rejection reason codes, after those of large partner programmes.
REJECT_REASONS: tuple[str, ...] = get_args(RejectReason)


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
    source: _ShortText

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
        value = value.astimezone(UTC)
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


class BusinessEnrolled(EventModel):
    """A business opened its passport: enrolled by a CEFAC delegation or an advisor."""

    RECORD: ClassVar[str] = "BusinessEnrolled"
    TOPIC: ClassVar[str] = catalog.ENROLMENTS

    type: Literal["business_enrolled"] = "business_enrolled"
    siren: Siren
    name: BusinessName
    departement: DepartementCode
    naf: NafCode | None = None
    employees: int | None = Field(default=None, ge=0, le=249)
    contact_email: EmailAddress | None = None
    advisor_id: _ShortText | None = None
    delegation: _ShortText | None = None
    consent_share_with_resellers: bool = False

    def key(self) -> str:
        return self.siren


class ModuleCompleted(EventModel):
    """A business completed one of the free modules."""

    RECORD: ClassVar[str] = "ModuleCompleted"
    TOPIC: ClassVar[str] = catalog.TRAINING

    type: Literal["module_completed"] = "module_completed"
    siren: Siren
    module_id: ModuleId
    trainer_org: BusinessName | None = None

    def key(self) -> str:
        return self.siren


class OfferRequested(EventModel):
    """A business asked for a partner offer in one category."""

    RECORD: ClassVar[str] = "OfferRequested"
    TOPIC: ClassVar[str] = catalog.OFFER_REQUESTS

    type: Literal["offer_requested"] = "offer_requested"
    siren: Siren
    category: CategorySlug

    def key(self) -> str:
        return self.siren


class ResellerProfile(EventModel):
    """A reseller's profile: where it sells, what, and how many open leads it takes."""

    RECORD: ClassVar[str] = "ResellerProfile"
    TOPIC: ClassVar[str] = catalog.RESELLERS

    type: Literal["reseller_profile"] = "reseller_profile"
    reseller_id: ResellerId
    name: BusinessName
    departements: Annotated[tuple[DepartementCode, ...], AfterValidator(_unique)] = Field(
        min_length=1
    )
    categories: Annotated[tuple[CategorySlug, ...], AfterValidator(_unique)] = Field(
        min_length=1
    )
    capacity: int = Field(default=10, ge=0, le=10_000)
    weight: int = Field(default=1, ge=1, le=100)
    status: Literal["active", "paused", "retired"] = "active"

    def key(self) -> str:
        return self.reseller_id


class LeadAnswered(EventModel):
    """A reseller's answer to a lead: accepted or rejected (with a reason), later won or lost."""

    RECORD: ClassVar[str] = "LeadAnswered"
    TOPIC: ClassVar[str] = catalog.LEAD_RESPONSES

    type: Literal["lead_answered"] = "lead_answered"
    lead_id: LeadId
    reseller_id: ResellerId
    answer: Literal["accepted", "rejected", "won", "lost"]
    # validate_default: the "a rejection needs a reason" rule must run when it is absent.
    reason: RejectReason | None = Field(default=None, validate_default=True)

    @field_validator("reason")
    @classmethod
    def _reason_only_when_rejected(
        cls, value: RejectReason | None, info: ValidationInfo
    ) -> RejectReason | None:
        answer = info.data.get("answer")
        if answer is None:  # the answer itself is invalid, and its own error says so
            return value
        if answer == "rejected" and value is None:
            raise ValueError(f"a rejected lead needs a reason: one of {', '.join(REJECT_REASONS)}")
        if answer != "rejected" and value is not None:
            raise ValueError(f"only a rejected lead has a reason (answer is {answer!r})")
        return value

    def key(self) -> str:
        return self.lead_id


Event = Annotated[
    BusinessEnrolled | ModuleCompleted | OfferRequested | ResellerProfile | LeadAnswered,
    Field(discriminator="type"),
]
#: Validates any partner event by its ``type``.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(hide_input_in_errors=True))

#: The model of each partner-event Avro record.
MODELS_BY_RECORD: dict[str, type[EventModel]] = {
    model.RECORD: model
    for model in (BusinessEnrolled, ModuleCompleted, OfferRequested, ResellerProfile, LeadAnswered)
}


def parse_event(data: Mapping[str, Any] | bytes, *, now: datetime | None = None) -> EventModel:
    """Validate one partner event (a mapping, or JSON bytes) into its model.

    ``now`` replaces the clock of the future-timestamp check.
    Raises pydantic's ``ValidationError``.
    """
    context = {NOW: now} if now is not None else None
    if isinstance(data, bytes | bytearray):
        return EVENT_ADAPTER.validate_json(data, context=context)
    return EVENT_ADAPTER.validate_python(dict(data), context=context)
