"""The JSON face of the partner events: the union of their models, and how to parse one.

Partners POST these as JSON; the ingest validates them here, then writes
``model.to_avro()`` with the codec. The models live in ``schemas.events``, their
field types in ``schemas.fields`` and the envelope in ``schemas.envelope``; this
module is the one import other packages need, and re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter

from schemas.envelope import FUTURE_TOLERANCE, NOW, EventModel
from schemas.events import (
    BusinessEnrolled,
    ConsentWithdrawn,
    ErasureRequested,
    LeadAnswered,
    ModuleCompleted,
    OfferRequested,
    ResellerProfile,
    TrainingFeedback,
    TrainingSessionAttended,
)
from schemas.examples import EXAMPLES
from schemas.fields import (
    DELIVERY_MODES,
    REJECT_REASONS,
    BusinessName,
    CategorySlug,
    DepartementCode,
    EmailAddress,
    LeadId,
    ModuleId,
    NafCode,
    PhoneNumber,
    RejectReason,
    ResellerId,
    Siren,
    Siret,
    WebhookUrl,
)

__all__ = [
    "DELIVERY_MODES",
    "EVENT_ADAPTER",
    "EXAMPLES",
    "FUTURE_TOLERANCE",
    "MODELS",
    "MODELS_BY_RECORD",
    "MODELS_BY_TYPE",
    "NOW",
    "REJECT_REASONS",
    "BusinessEnrolled",
    "BusinessName",
    "CategorySlug",
    "ConsentWithdrawn",
    "DepartementCode",
    "EmailAddress",
    "ErasureRequested",
    "Event",
    "EventModel",
    "LeadAnswered",
    "LeadId",
    "ModuleCompleted",
    "ModuleId",
    "NafCode",
    "OfferRequested",
    "PhoneNumber",
    "RejectReason",
    "ResellerId",
    "ResellerProfile",
    "Siren",
    "Siret",
    "TrainingFeedback",
    "TrainingSessionAttended",
    "WebhookUrl",
    "parse_event",
]

Event = Annotated[
    BusinessEnrolled
    | ModuleCompleted
    | TrainingSessionAttended
    | TrainingFeedback
    | OfferRequested
    | ConsentWithdrawn
    | ErasureRequested
    | ResellerProfile
    | LeadAnswered,
    Field(discriminator="type"),
]
#: Validates any partner event by its ``type``.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(hide_input_in_errors=True))

#: Every partner-event model, in the order of the ``Event`` union.
MODELS: tuple[type[EventModel], ...] = (
    BusinessEnrolled,
    ModuleCompleted,
    TrainingSessionAttended,
    TrainingFeedback,
    OfferRequested,
    ConsentWithdrawn,
    ErasureRequested,
    ResellerProfile,
    LeadAnswered,
)
#: The model of each partner-event Avro record.
MODELS_BY_RECORD: dict[str, type[EventModel]] = {model.RECORD: model for model in MODELS}
#: The model of each ``type`` tag.
MODELS_BY_TYPE: dict[str, type[EventModel]] = {
    str(model.model_fields["type"].default): model for model in MODELS
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
