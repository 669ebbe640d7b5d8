"""SIREN, SIRET (with La Poste's exception), Luhn and NAF checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from schemas.identifiers import (
    LA_POSTE_HEAD_OFFICE,
    is_valid_naf,
    is_valid_siren,
    is_valid_siret,
    luhn_valid,
)


@pytest.mark.parametrize(
    "siren",
    ["732829320", "542051180", "552100554", "356000000", "443061841", "000000000"],
)
def test_valid_sirens(siren: str) -> None:
    assert is_valid_siren(siren)


@pytest.mark.parametrize(
    "siren",
    [
        "732829321",  # last digit changed
        "732829302",  # two digits swapped
        "542051181",
        "73282932",  # 8 digits
        "7328293200",  # 10 digits
        "73282932A",
        "732 829 320",
        "",
        "７３２８２９３２０",  # full-width digits: isdigit() alone would say yes  # noqa: RUF001
        "٧٣٢٨٢٩٣٢٠",  # Arabic-Indic digits
    ],
)
def test_invalid_sirens(siren: str) -> None:
    assert not is_valid_siren(siren)


def test_non_strings_are_not_identifiers() -> None:
    assert not is_valid_siren(732829320)  # type: ignore[arg-type]  # callers may pass JSON numbers
    assert not is_valid_siret(None)  # type: ignore[arg-type]  # idem
    assert not is_valid_naf(47.11)  # type: ignore[arg-type]  # idem


def test_la_poste_siren_passes_luhn_itself() -> None:
    # The brief assumed 356000000 needs the digit-sum rule; it does not: it is
    # Luhn-valid, and its digit sum (14) is not even a multiple of 5.
    assert luhn_valid("356000000")
    assert sum(map(int, "356000000")) == 14


@pytest.mark.parametrize(
    "siret",
    [
        "73282932000074",  # IBM France
        "54205118000066",
        LA_POSTE_HEAD_OFFICE,  # 35600000000048: La Poste's head office keeps Luhn
        "35600000000001",  # La Poste establishment: digit sum 15, not Luhn-valid
        "35600000049837",  # digit sum 45
    ],
)
def test_valid_sirets(siret: str) -> None:
    assert is_valid_siret(siret)


@pytest.mark.parametrize(
    "siret",
    [
        "73282932000075",  # whole fails Luhn
        "73282932100073",  # SIREN part fails Luhn (and so does the whole)
        "7328293200007",  # 13 digits
        "732829320000740",  # 15 digits
        "7328293200007A",
        "35600000000002",  # La Poste: digit sum 16
        "35600000000014",  # La Poste, Luhn-valid but digit sum 19: not the head office
    ],
)
def test_invalid_sirets(siret: str) -> None:
    assert not is_valid_siret(siret)


def test_invalid_siren_part_is_caught_even_when_the_whole_passes_luhn() -> None:
    siren = "732829321"
    assert not is_valid_siren(siren)
    whole = next(s for nic in range(100_000) if luhn_valid(s := f"{siren}{nic:05d}"))
    assert not is_valid_siret(whole)


def test_la_poste_examples_are_what_the_comments_say() -> None:
    assert luhn_valid(LA_POSTE_HEAD_OFFICE)
    assert sum(map(int, LA_POSTE_HEAD_OFFICE)) % 5 != 0
    assert not luhn_valid("35600000000001")
    assert luhn_valid("35600000000014")
    assert sum(map(int, "35600000049837")) == 45


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("79927398713", True), ("79927398710", False), ("0", True), ("", False), ("12a", False)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@settings(database=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=20), st.data())
def test_luhn_catches_every_single_digit_error(body: str, data: st.DataObject) -> None:
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    number = body + check
    position = data.draw(st.integers(0, len(number) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_valid(number[:position] + wrong + number[position + 1 :])


def _luhn_by_the_book(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


@settings(database=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_is_the_textbook_sum(digits: str) -> None:
    assert luhn_valid(digits) is _luhn_by_the_book(digits)


@pytest.mark.parametrize("code", ["47.11D", "10.71C", "62.01Z", "01.11Z"])
def test_valid_naf(code: str) -> None:
    assert is_valid_naf(code)


@pytest.mark.parametrize(
    "code",
    ["47.11d", "4711D", "47.1D", "47.11", "47.11DD", "A7.11D", "47,11D", " 47.11D", "47.11D\n"],
)
def test_invalid_naf(code: str) -> None:
    assert not is_valid_naf(code)


# -- held to python-stdnum, the maintained reference ------------------------------------------

_LA_POSTE_SIRETS = st.text(alphabet="0123456789", min_size=5, max_size=5).map(
    lambda nic: f"356000000{nic}")
_LUHN_SIRENS = st.text(alphabet="0123456789", min_size=8, max_size=8).map(
    lambda body: next(f"{body}{d}" for d in "0123456789" if luhn_valid(f"{body}{d}")))


@settings(max_examples=3000)
@given(st.one_of(st.text(alphabet="0123456789", min_size=9, max_size=9), _LUHN_SIRENS))
def test_siren_agrees_with_stdnum(siren: str) -> None:
    assert is_valid_siren(siren) == stdnum_siren.is_valid(siren)


@settings(max_examples=3000)
@given(st.one_of(
    st.text(alphabet="0123456789", min_size=14, max_size=14),
    _LA_POSTE_SIRETS,
    st.tuples(_LUHN_SIRENS, st.text(alphabet="0123456789", min_size=5, max_size=5)).map(
        "".join)))
def test_siret_agrees_with_stdnum(siret: str) -> None:
    assert is_valid_siret(siret) == stdnum_siret.is_valid(siret)


@pytest.mark.parametrize("spaced", ["732 829 320", "732.829.320", "73282932000074 "])
def test_what_stdnum_compacts_is_not_an_identifier_here(spaced: str) -> None:
    # An identifier field holds the bare digits: a partner's formatting is not repaired.
    checks = {9: (is_valid_siren, stdnum_siren), 14: (is_valid_siret, stdnum_siret)}
    ours, reference = checks[len(spaced.replace(" ", "").replace(".", ""))]
    assert reference.is_valid(spaced)
    assert not ours(spaced)
