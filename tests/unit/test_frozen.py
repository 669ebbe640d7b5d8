"""``schemas.values.frozen``: what a frozen dataclass gives, but for the run-time refusal."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, replace

from schemas.frozen import frozen


@frozen
class _Point:
    x: int
    label: str = "p"


@dataclass(frozen=True, slots=True)
class _Frozen:
    x: int
    label: str = "p"


def test_a_value_compares_hashes_and_replaces_as_a_frozen_dataclass() -> None:
    a, b = _Point(1), _Point(1, "p")
    assert a == b
    assert hash(a) == hash(b)
    assert {a, b} == {a}
    assert replace(a, x=2) == _Point(2)
    assert a != _Point(1, "q")
    assert repr(a) == "_Point(x=1, label='p')"
    assert not hasattr(a, "__dict__")  # slots, as the frozen ones were


def test_only_the_run_time_refusal_is_given_up() -> None:
    frozen = _Frozen(1)
    try:
        frozen.x = 2  # type: ignore[misc]
    except FrozenInstanceError:
        pass
    else:
        raise AssertionError("a frozen dataclass refuses assignment")
    point = _Point(1)
    point.x = 2  # type: ignore[misc]  # mypy refuses it: that is the guard
    assert point.x == 2
