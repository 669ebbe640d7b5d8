"""Properties: any valid partner event survives JSON → model → Avro → model unchanged.

The strategies build events the way partners write them (SIRENs completed by
Luhn, départements from the reference data, phones in any accepted spelling,
time zones anywhere), so the normalisations are exercised too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.fields import DELIVERY_MODES, REJECT_REASONS, check_label, normalise_phone
from schemas.identifiers import is_valid_siret, luhn_valid
from schemas.models import MODELS_BY_TYPE, parse_event
from schemas.reference import CATEGORIES, DEPARTEMENTS, MODULES

CODEC = Codec.default()
# The clock of the future check: generated instants are all well before it.
LATER = datetime(2100, 1, 1, tzinfo=UTC)
PROPERTIES = settings(
    database=None, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)

DIGITS = "0123456789"


def luhn_complete(body: str) -> str:
    """``body`` followed by the one digit that makes it pass Luhn."""
    return body + next(d for d in DIGITS if luhn_valid(body + d))


sirens = st.text(DIGITS, min_size=8, max_size=8).map(luhn_complete)


def sirets(siren: str) -> st.SearchStrategy[str]:
    # La Poste's establishments follow a digit-sum rule instead: filtered out, rare.
    return st.text(DIGITS, min_size=4, max_size=4).map(
        lambda nic: luhn_complete(siren + nic)
    ).filter(is_valid_siret)


departements = st.sampled_from(sorted(DEPARTEMENTS)).flatmap(
    lambda code: st.sampled_from([code, code.lower()])  # "2a" is accepted for "2A"
)
# Words without whitespace, control or format characters, joined by single spaces:
# what survives the models' whitespace stripping unchanged.
_word = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")),
    min_size=1, max_size=12,
)


def _is_label(text: str) -> bool:
    """Whether a text is a fit name (schemas/fields.py: a letter, one script a word...)."""
    try:
        check_label(text)
    except ValueError:
        return False
    return True


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(_word, min_size=1, max_size=6).map(" ".join).filter(
        lambda text: len(text) <= max_size and _is_label(text)
    )


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domains = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_label, min_size=1, max_size=3),
    st.from_regex(r"[A-Za-z]{2,6}", fullmatch=True),
)
emails = st.builds(
    "{}@{}".format,
    st.from_regex(r"[A-Za-z0-9_+-]{1,20}(\.[A-Za-z0-9_+-]{1,10}){0,2}", fullmatch=True),
    domains,
)


@st.composite
def phones(draw: st.DrawFn) -> str:
    """A French number, metropolitan or overseas, in one of the spellings people use."""
    national = draw(st.sampled_from("123456789")) + draw(st.text(DIGITS, min_size=8, max_size=8))
    pairs = [national[0], *(national[i : i + 2] for i in range(1, 9, 2))]
    spelling = draw(st.sampled_from(["spaced", "compact", "dots", "+33 spaced", "+33", "0033"]))
    return {
        "spaced": "0" + " ".join(pairs),
        "compact": "0" + national,
        "dots": "0" + ".".join(pairs),
        "+33 spaced": "+33 " + " ".join(pairs),
        "+33": "+33" + national,
        "0033": "0033 " + " ".join(pairs),
    }[spelling]


_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(2006, 11, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2099, 1, 1),  # noqa: DTZ001 - idem
    timezones=_offsets,
)
webhook_urls = st.one_of(
    st.builds("https://{}/{}".format, domains, st.from_regex(r"[a-z0-9/_-]{0,30}", fullmatch=True)),
    st.builds("http://127.0.0.1:{}/hook".format, st.integers(1, 65535)),
)
short_texts = texts(64)


def optional(
    draw: st.DrawFn, event: dict[str, Any], name: str, values: st.SearchStrategy[Any]
) -> None:
    """Leave ``name`` out, set it to null, or give it a value: all three mean something valid."""
    choice = draw(st.sampled_from(["absent", "null", "value"]))
    if choice != "absent":
        event[name] = None if choice == "null" else draw(values)


@st.composite
def envelope(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind, "occurred_at": draw(instants).isoformat(), "source": draw(short_texts),
    }
    if draw(st.booleans()):
        event["event_id"] = str(draw(st.uuids()))
    return event


@st.composite
def business_enrolled(draw: st.DrawFn) -> dict[str, Any]:
    siren = draw(sirens)
    event = draw(envelope("business_enrolled")) | {
        "siren": siren, "name": draw(texts(200)), "departement": draw(departements),
    }
    optional(draw, event, "naf", st.from_regex(r"[0-9]{2}\.[0-9]{2}[A-Za-z]", fullmatch=True))
    optional(draw, event, "employees", st.integers(0, 249))
    optional(draw, event, "contact_email", emails)
    optional(draw, event, "advisor_id", short_texts)
    optional(draw, event, "delegation", short_texts)
    if draw(st.booleans()):
        event["consent_share_with_resellers"] = draw(st.booleans())
    optional(draw, event, "siret", sirets(siren))
    optional(draw, event, "broadband", st.booleans())
    optional(draw, event, "ecommerce", st.booleans())
    optional(draw, event, "contact_phone", phones())
    optional(draw, event, "contact_name", texts(200))
    return event


@st.composite
def module_completed(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(envelope("module_completed")) | {
        "siren": draw(sirens), "module_id": draw(st.sampled_from(sorted(MODULES))),
    }
    optional(draw, event, "trainer_org", texts(200))
    return event


@st.composite
def training_session_attended(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(envelope("training_session_attended")) | {
        "siren": draw(sirens), "session_id": draw(texts(128)),
        "module_id": draw(st.sampled_from(sorted(MODULES))),
    }
    optional(draw, event, "trainer_org", texts(200))
    if draw(st.booleans()):
        event["attended"] = draw(st.booleans())
    return event


@st.composite
def training_feedback(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(envelope("training_feedback")) | {
        "siren": draw(sirens), "module_id": draw(st.sampled_from(sorted(MODULES))),
        "score": draw(st.integers(1, 5)),
    }
    optional(draw, event, "trainer_org", texts(200))
    optional(draw, event, "delegation", short_texts)
    optional(draw, event, "comment", st.one_of(st.just(""), texts(2000)))
    return event


@st.composite
def offer_requested(draw: st.DrawFn) -> dict[str, Any]:
    return draw(envelope("offer_requested")) | {
        "siren": draw(sirens), "category": draw(st.sampled_from(sorted(CATEGORIES))),
    }


@st.composite
def consent_withdrawn(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(envelope("consent_withdrawn")) | {"siren": draw(sirens)}
    optional(draw, event, "reason", texts(500))
    return event


@st.composite
def erasure_requested(draw: st.DrawFn) -> dict[str, Any]:
    return draw(envelope("erasure_requested")) | {
        "siren": draw(sirens), "requested_by": draw(short_texts),
    }


@st.composite
def reseller_profile(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(envelope("reseller_profile")) | {
        "reseller_id": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{1,63}", fullmatch=True)),
        "name": draw(texts(200)),
        "departements": draw(st.lists(departements, min_size=1, max_size=8)),
        "categories": draw(st.lists(st.sampled_from(sorted(CATEGORIES)), min_size=1)),
    }
    for name, values in (("capacity", st.integers(0, 10_000)), ("weight", st.integers(1, 100)),
                         ("status", st.sampled_from(["active", "paused", "retired"]))):
        if draw(st.booleans()):
            event[name] = draw(values)
    delivery = draw(st.sampled_from(DELIVERY_MODES))
    if delivery != "pull" or draw(st.booleans()):
        event["delivery"] = delivery
    if delivery == "webhook":
        event["webhook_url"] = draw(webhook_urls)
    else:
        optional(draw, event, "webhook_url", webhook_urls)
    optional(draw, event, "contact_email", emails)
    return event


@st.composite
def lead_answered(draw: st.DrawFn) -> dict[str, Any]:
    answer = draw(st.sampled_from(["accepted", "rejected", "won", "lost"]))
    event = draw(envelope("lead_answered")) | {
        "lead_id": draw(texts(128)),
        "reseller_id": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{1,63}", fullmatch=True)),
        "answer": answer,
    }
    if answer == "rejected":
        event["reason"] = draw(st.sampled_from(REJECT_REASONS))
    return event


EVENTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "business_enrolled": business_enrolled(),
    "module_completed": module_completed(),
    "training_session_attended": training_session_attended(),
    "training_feedback": training_feedback(),
    "offer_requested": offer_requested(),
    "consent_withdrawn": consent_withdrawn(),
    "erasure_requested": erasure_requested(),
    "reseller_profile": reseller_profile(),
    "lead_answered": lead_answered(),
}


def test_there_is_a_strategy_for_every_event_type() -> None:
    assert set(EVENTS) == set(MODELS_BY_TYPE)


@pytest.mark.parametrize("kind", sorted(EVENTS))
@PROPERTIES
@given(data=st.data())
def test_json_to_model_to_avro_to_model_is_unchanged(kind: str, data: st.DataObject) -> None:
    event = data.draw(EVENTS[kind], label="event")
    model = parse_event(json.dumps(event).encode(), now=LATER)
    assert isinstance(model, MODELS_BY_TYPE[kind])

    decoded = CODEC.decode(CODEC.encode(model.RECORD, model.to_avro()))
    again = type(model).from_avro(decoded.datum)

    assert decoded.record == model.RECORD
    assert decoded.version == CODEC.registry.current_version(model.RECORD)
    assert again == model
    assert again.model_dump_json() == model.model_dump_json()
    # Normalisation is idempotent: the model's own JSON parses back to itself.
    assert parse_event(model.model_dump_json().encode(), now=LATER) == model


@PROPERTIES
@given(national=st.sampled_from("12345679").flatmap(
    lambda first: st.text(DIGITS, min_size=8, max_size=8).map(lambda rest: first + rest)
), spelling=st.data())
def test_every_spelling_of_a_number_normalises_to_one_e164(
    national: str, spelling: st.DataObject
) -> None:
    pairs = [national[0], *(national[i : i + 2] for i in range(1, 9, 2))]
    written = spelling.draw(st.sampled_from([
        "0" + " ".join(pairs), "0" + national, "0" + ".".join(pairs), "0" + "-".join(pairs),
        "+33 " + " ".join(pairs), "+33" + national, "+33 (0)" + " ".join(pairs),
    ]))
    e164 = normalise_phone(written)
    assert e164 in {"+33" + national, f"+{e164[1:4]}{national}"}
    assert len(e164) in {12, 13}
    assert normalise_phone(e164) == e164


@PROPERTIES
@given(phone=phones(), extra=st.sampled_from(DIGITS), drop=st.booleans())
def test_a_digit_too_many_or_too_few_is_refused(phone: str, extra: str, drop: bool) -> None:
    wrong = phone[:-1] if drop else phone + extra
    with pytest.raises(ValueError, match="not a French phone number"):
        normalise_phone(wrong)
