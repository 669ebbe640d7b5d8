"""Plausible French business identities for demo traffic: SIRENs, names, NAF codes, e-mails.

Pure functions of a ``random.Random``: the same seed gives the same businesses.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

from schemas.identifiers import luhn_valid

#: Trades of very small businesses, with their NAF rév. 2 code.
TRADES: tuple[tuple[str, str], ...] = (
    ("Boulangerie", "10.71C"), ("Boucherie", "47.22Z"), ("Garage", "45.20A"),
    ("Salon de coiffure", "96.02A"), ("Restaurant", "56.10A"), ("Pharmacie", "47.73Z"),
    ("Plomberie", "43.22A"), ("Électricité", "43.21A"), ("Fleuriste", "47.76Z"),
    ("Cabinet comptable", "69.20Z"), ("Agence immobilière", "68.31Z"), ("Librairie", "47.61Z"),
    ("Hôtel", "55.10Z"), ("Cabinet d'architecte", "71.11Z"), ("Taxis", "49.32Z"),
    ("Menuiserie", "43.32A"), ("Épicerie", "47.11B"), ("Optique", "47.78A"),
    ("Studio photo", "74.20Z"), ("Transports", "49.41A"), ("Conseil informatique", "62.02A"),
    ("Auto-école", "85.53Z"), ("Clinique vétérinaire", "75.00Z"), ("Cave à vins", "47.25Z"),
    ("Imprimerie", "18.12Z"), ("Pressing", "96.01B"), ("Maçonnerie", "43.99C"),
)

SURNAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet",
    "François", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guérin",
    "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier",
    "Le Gall", "Kerbrat", "Etcheverry", "Santoni", "Pujol", "Baptiste",
)

PLACES: tuple[str, ...] = (
    "du Centre", "de la Gare", "du Marché", "des Lilas", "du Port", "de l'Église",
    "des Halles", "du Château", "de la Place", "du Moulin", "des Remparts", "du Lac",
)

FORMS: tuple[str, ...] = ("", "", "", " SARL", " & Fils", " EURL", " SAS")


def siren(rng: random.Random) -> str:
    """A random SIREN that passes its Luhn check (8 random digits + the check digit)."""
    # Real SIRENs of companies mostly start with 3-8; 0 would read oddly in a demo.
    body = str(rng.randint(3, 8)) + "".join(str(rng.randrange(10)) for _ in range(7))
    return body + next(str(d) for d in range(10) if luhn_valid(f"{body}{d}"))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a synthetic business is."""

    name: str
    naf: str
    employees: int
    email: str


def identity(rng: random.Random) -> Identity:
    """A business name, its activity code, its size and a contact address."""
    trade, naf = rng.choice(TRADES)
    if rng.random() < 0.3:
        name = f"{trade} {rng.choice(PLACES)}"
    else:
        name = f"{trade} {rng.choice(SURNAMES)}{rng.choice(FORMS)}"
    # TPE mostly (under 10 people), a few PME.
    employees = rng.randint(0, 9) if rng.random() < 0.85 else rng.randint(10, 249)
    return Identity(name=name, naf=naf, employees=employees, email=f"contact@{slug(name)}.fr")


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens ("Épicerie du Marché" → "epicerie-du-marche")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
