"""French spreadsheet headers to event field names: case-, accent-, space- and BOM-insensitive.

Partners export from whatever spreadsheet they have, so "Raison sociale",
"RAISON_SOCIALE" and "raison sociale " are one column. A header is matched
against a table of French (and English) names first, then against the field
names of every event model, so a column named after a new model's field needs
no entry here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from schemas.fields import safe_cell
from schemas.models import MODELS_BY_RECORD

# Normalised header spellings per field. Keys are field names of the event models
# (some arrive with the schema work in flight: siret, contact_phone, contact_name,
# broadband, ecommerce); a field a model lacks is refused by that model, not here.
_ALIASES: dict[str, tuple[str, ...]] = {
    "siren": ("siren", "nsiren", "numerosiren", "nodesiren"),
    "siret": ("siret", "nsiret", "numerosiret"),
    "name": ("raisonsociale", "nom", "nomentreprise", "entreprise", "denomination",
             "societe", "nomcommercial"),
    "departement": ("departement", "dept", "dep", "dpt", "codedepartement"),
    "naf": ("codenaf", "naf", "ape", "codeape", "nafape", "codenafape"),
    "employees": ("effectif", "effectifs", "salaries", "nombredesalaries", "nbsalaries"),
    "contact_email": ("email", "courriel", "mail", "adressemail", "adresseemail"),
    "contact_phone": ("telephone", "tel", "telephonecontact", "portable"),
    "contact_name": ("contact", "nomcontact", "nomducontact", "interlocuteur"),
    "consent_share_with_resellers": ("consentement", "consent", "accordpartage"),
    "module_id": ("module", "codemodule", "idmodule"),
    "category": ("categorie", "categoriedoffre", "offre"),
    "occurred_at": ("date", "dateevenement", "horodatage"),
    "type": ("type", "typeevenement", "evenement"),
    "advisor_id": ("conseiller", "idconseiller"),
    "delegation": ("delegation",),
    "trainer_org": ("organismedeformation", "organisme", "formateur"),
    "broadband": ("hautdebit",),
    "ecommerce": ("commerceenligne", "venteenligne"),
    "event_id": ("identifiant", "idevenement"),
    "source": ("partenaire",),
}


def normalise(text: str) -> str:
    """Lower case, no accents, no BOM, nothing but letters and digits: "Dépt." -> "dept"."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\ufeff", ""))
    return "".join(ch for ch in decomposed.casefold()
                    if ch.isalnum() and not unicodedata.combining(ch))


@cache
def _fields() -> dict[str, str]:
    # Built on first use rather than at import: the models are the truth, aliases on top.
    known: dict[str, str] = {}
    for model in MODELS_BY_RECORD.values():
        for name in model.model_fields:
            known.setdefault(normalise(name), name)
    for name, spellings in _ALIASES.items():
        for spelling in spellings:
            known[spelling] = name
    return known


def field_of(header: str) -> str | None:
    """The event field a column header names, or None."""
    return _fields().get(normalise(header))


@dataclass(frozen=True, slots=True)
class Columns:
    """Which field each column of a file feeds, and the columns that feed none."""

    fields: tuple[str | None, ...]
    """Per column, in order: the field, or None for a column that is ignored."""
    unknown: tuple[str, ...]
    """Headers that name no field, as the report shows them (``safe_cell``: a header is
    the sender's text, and the report is a CSV someone opens)."""
    repeated: tuple[str, ...]
    """Headers naming a field an earlier column already feeds (the first one wins), shown
    the same way."""

    def present(self) -> frozenset[str]:
        """The fields some column feeds."""
        return frozenset(name for name in self.fields if name is not None)

    def values(self, cells: Sequence[str]) -> dict[str, str]:
        """One row's cells by field name (cells beyond the header are dropped)."""
        return {name: cell for name, cell in zip(self.fields, cells, strict=False)
                if name is not None}


def columns(headers: Iterable[str]) -> Columns:
    """Map a file's header row to fields."""
    fields: list[str | None] = []
    unknown: list[str] = []
    repeated: list[str] = []
    seen: set[str] = set()
    for header in headers:
        name = field_of(header)
        if name is None:
            if header.strip():
                unknown.append(safe_cell(header.strip()))
        elif name in seen:
            repeated.append(safe_cell(header.strip()))
            name = None
        else:
            seen.add(name)
        fields.append(name)
    return Columns(tuple(fields), tuple(unknown), tuple(repeated))
