"""``frozen``: a frozen dataclass for the type checker, a plain slots dataclass at run time.

The objects built for every record (inputs, decoded values, events, passports,
outbox rows) are immutable values, and mypy holds every module to that: through
``dataclass_transform(frozen_default=True)`` it refuses any assignment to their
fields, as for ``@dataclass(frozen=True)``. At run time, though, a frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__``: 1.0 µs
for seven fields against 0.24 µs for a plain one, several times per record
(about 8% of the passport service's CPU). So the run-time class is a plain
slots dataclass, hashable and compared by value as a frozen one is
(``unsafe_hash``); only the run-time refusal of assignment is given up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    """Make ``cls`` an immutable value class (see the module's docstring)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
