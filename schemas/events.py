"""The partner events as pydantic models: one per Avro record, with the domain checks.

Each model names its Avro record (``RECORD``), its topic (``TOPIC``) and its
Kafka key (``key()``); its fields are the record's, ``schema_version`` aside,
plus the ``type`` tag that tells the events apart in JSON.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from schemas import catalog
from schemas.envelope import EventModel
from schemas.fields import (
    REJECT_REASONS,
    BusinessName,
    CategorySlug,
    Comment,
    Delivery,
    DepartementCode,
    EmailAddress,
    LeadId,
    ModuleId,
    NafCode,
    PersonName,
    PhoneNumber,
    Reason,
    RejectReason,
    ResellerId,
    SessionId,
    ShortText,
    Siren,
    Siret,
    WebhookUrl,
    unique,
)

__all__ = [
    "BusinessEnrolled",
    "ConsentWithdrawn",
    "ErasureRequested",
    "LeadAnswered",
    "ModuleCompleted",
    "OfferRequested",
    "ResellerAbsence",
    "ResellerProfile",
    "TrainingFeedback",
    "TrainingSessionAttended",
]


class _BusinessEvent(EventModel):
    """An event about one business, keyed (and partitioned) by its SIREN."""

    siren: Siren

    def key(self) -> str:
        return self.siren


class BusinessEnrolled(_BusinessEvent):
    """A business opened its passport: enrolled by a CEFAC delegation or an advisor."""

    RECORD: ClassVar[str] = "BusinessEnrolled"
    TOPIC: ClassVar[str] = catalog.ENROLMENTS

    type: Literal["business_enrolled"] = "business_enrolled"
    name: BusinessName
    departement: DepartementCode
    naf: NafCode | None = None
    employees: int | None = Field(default=None, ge=0, le=249)
    contact_email: EmailAddress | None = None
    advisor_id: ShortText | None = None
    delegation: ShortText | None = None
    consent_share_with_resellers: bool = False
    # v2: the establishment, its equipment, and a person to call.
    siret: Siret | None = None
    broadband: bool | None = None
    ecommerce: bool | None = None
    contact_phone: PhoneNumber | None = None
    contact_name: PersonName | None = None

    @field_validator("siret")
    @classmethod
    def _siret_of_this_siren(cls, value: str | None, info: ValidationInfo) -> str | None:
        siren = info.data.get("siren")
        # An invalid SIREN has its own error; a SIRET cannot agree with it anyway.
        if value is not None and siren is not None and value[:9] != siren:
            raise ValueError(f"SIRET {value} is not an establishment of SIREN {siren}")
        return value


class ModuleCompleted(_BusinessEvent):
    """A business completed one of the free modules."""

    RECORD: ClassVar[str] = "ModuleCompleted"
    TOPIC: ClassVar[str] = catalog.TRAINING

    type: Literal["module_completed"] = "module_completed"
    module_id: ModuleId
    trainer_org: BusinessName | None = None


class TrainingSessionAttended(_BusinessEvent):
    """A business was expected at a training session, and came (or did not)."""

    RECORD: ClassVar[str] = "TrainingSessionAttended"
    TOPIC: ClassVar[str] = catalog.TRAINING

    type: Literal["training_session_attended"] = "training_session_attended"
    session_id: SessionId
    module_id: ModuleId
    trainer_org: BusinessName | None = None
    attended: bool = True


class TrainingFeedback(_BusinessEvent):
    """A trainee's feedback on a module: the quality referential's raw material."""

    RECORD: ClassVar[str] = "TrainingFeedback"
    TOPIC: ClassVar[str] = catalog.TRAINING

    type: Literal["training_feedback"] = "training_feedback"
    module_id: ModuleId
    trainer_org: BusinessName | None = None
    delegation: ShortText | None = None
    # Strict: a score of true or "4" is a bug upstream, not a rating.
    score: StrictInt = Field(ge=1, le=5)
    comment: Comment | None = None


class OfferRequested(_BusinessEvent):
    """A business asked for a partner offer in one category."""

    RECORD: ClassVar[str] = "OfferRequested"
    TOPIC: ClassVar[str] = catalog.OFFER_REQUESTS

    type: Literal["offer_requested"] = "offer_requested"
    category: CategorySlug


class ConsentWithdrawn(_BusinessEvent):
    """A business withdrew its consent to share its contact data with resellers."""

    RECORD: ClassVar[str] = "ConsentWithdrawn"
    TOPIC: ClassVar[str] = catalog.ENROLMENTS

    type: Literal["consent_withdrawn"] = "consent_withdrawn"
    reason: Reason | None = None


class ErasureRequested(_BusinessEvent):
    """Someone asked for a business's personal data to be erased (GDPR article 17)."""

    RECORD: ClassVar[str] = "ErasureRequested"
    TOPIC: ClassVar[str] = catalog.ENROLMENTS

    type: Literal["erasure_requested"] = "erasure_requested"
    requested_by: ShortText


@with_config(ConfigDict(extra="forbid", str_strip_whitespace=True))
class ResellerAbsence(TypedDict):
    """Days (inclusive, Europe/Paris) a reseller takes no new lead: holidays, a full order book.

    ISO dates as text, as in the Avro record: a plain dict, so the model's own
    values are what the Publisher writes (connectors/publish.py writes a model's
    fields as they are, and an Avro record is a dict).
    """

    start: str
    end: str


def _absence_dates(value: ResellerAbsence) -> ResellerAbsence:
    """Both ends ISO dates (normalised to YYYY-MM-DD), the end not before the start."""
    try:
        start, end = date.fromisoformat(value["start"]), date.fromisoformat(value["end"])
    except ValueError as exc:
        raise ValueError(f"an absence's start and end are ISO dates (YYYY-MM-DD): {exc}") \
            from None
    if end < start:
        raise ValueError(f"an absence ends ({end}) before it starts ({start})")
    return {"start": start.isoformat(), "end": end.isoformat()}


class ResellerProfile(EventModel):
    """A reseller's profile: where and what it sells, how many open leads, how it gets them."""

    RECORD: ClassVar[str] = "ResellerProfile"
    TOPIC: ClassVar[str] = catalog.RESELLERS

    type: Literal["reseller_profile"] = "reseller_profile"
    reseller_id: ResellerId
    name: BusinessName
    departements: Annotated[tuple[DepartementCode, ...], AfterValidator(unique)] = Field(
        min_length=1
    )
    categories: Annotated[tuple[CategorySlug, ...], AfterValidator(unique)] = Field(min_length=1)
    capacity: int = Field(default=10, ge=0, le=10_000)
    weight: int = Field(default=1, ge=1, le=100)
    status: Literal["active", "paused", "retired"] = "active"
    # v2: delivery settings.
    delivery: Delivery = "pull"
    # validate_default: "webhook delivery needs a URL" must run when the URL is absent.
    webhook_url: WebhookUrl | None = Field(default=None, validate_default=True)
    contact_email: EmailAddress | None = None
    # v3: when it takes no new lead.
    absences: tuple[Annotated[ResellerAbsence, AfterValidator(_absence_dates)], ...] = ()

    @field_validator("webhook_url")
    @classmethod
    def _url_for_webhooks(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("delivery") == "webhook" and value is None:
            raise ValueError("webhook delivery needs a webhook_url")
        return value

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
