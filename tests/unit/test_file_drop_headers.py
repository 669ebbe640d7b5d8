"""French spreadsheet headers map to event fields whatever their case, accents, spaces or BOM."""

from __future__ import annotations

import pytest

from connectors.file_drop.headers import columns, field_of, normalise


@pytest.mark.parametrize(("header", "field"), [
    ("SIREN", "siren"),
    ("N° SIREN", "siren"),
    ("\ufeffSiren", "siren"),
    ("Raison sociale", "name"),
    ("RAISON_SOCIALE", "name"),
    ("  raison   sociale ", "name"),
    ("Nom", "name"),
    ("Département", "departement"),
    ("DEPARTEMENT", "departement"),
    ("Dépt.", "departement"),
    ("Dept", "departement"),
    ("Code NAF", "naf"),
    ("APE", "naf"),
    ("Effectif", "employees"),
    ("Salariés", "employees"),
    ("Email", "contact_email"),
    ("E-mail", "contact_email"),
    ("Courriel", "contact_email"),
    ("Téléphone", "contact_phone"),
    ("Consentement", "consent_share_with_resellers"),
    ("Module", "module_id"),
    ("Catégorie", "category"),
    ("Date", "occurred_at"),
    ("Type", "type"),
    ("SIRET", "siret"),
    # A model's own field name needs no alias, in any case.
    ("trainer_org", "trainer_org"),
    ("Reseller ID", "reseller_id"),
    ("contact_email", "contact_email"),
])
def test_header_names_its_field(header: str, field: str) -> None:
    assert field_of(header) == field


def test_normalise_drops_case_accents_spaces_punctuation_and_bom() -> None:
    assert normalise("\ufeffCatégorie d'offre ") == "categoriedoffre"
    assert normalise("DÉPT.") == "dept"


def test_unknown_and_repeated_columns_are_told_apart_from_fields() -> None:
    mapped = columns(["\ufeffSIREN", "Raison sociale", "Nom", "Commentaire", "", "Dépt"])
    assert mapped.fields == ("siren", "name", None, None, None, "departement")
    assert mapped.unknown == ("Commentaire",)
    assert mapped.repeated == ("Nom",)  # the first column for a field wins
    assert mapped.present() == {"siren", "name", "departement"}


def test_values_pair_cells_with_fields_and_drop_the_rest() -> None:
    mapped = columns(["SIREN", "Commentaire", "Nom"])
    assert mapped.values(["732829320", "rappeler lundi", "Boulangerie"]) == {
        "siren": "732829320", "name": "Boulangerie"}
    # A short row (a spreadsheet trims empty trailing cells) just lacks those fields.
    assert mapped.values(["732829320"]) == {"siren": "732829320"}
