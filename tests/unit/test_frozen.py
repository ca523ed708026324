"""slot_init: a frozen, slotted dataclass built through its slots behaves as the one dataclasses built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from edge_ext.frozen import slot_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: tuple = ()


@slot_init
@dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "b"
    c: tuple = ()


@slot_init
@dataclass(frozen=True, slots=True)
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


@pytest.mark.parametrize("args, kwargs", [
    pytest.param((1,), {}, id="defaults"),
    pytest.param((1, "x", (2,)), {}, id="positional"),
    pytest.param((), {"c": (3,), "a": 2}, id="keywords"),
])
def test_built_through_the_slots_it_is_the_same_record(args, kwargs):
    fast, plain = Fast(*args, **kwargs), Plain(*args, **kwargs)
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    assert fast == Fast(*args, **kwargs) and hash(fast) == hash(Fast(*args, **kwargs))
    assert repr(fast).replace("Fast", "Plain") == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 5  # type: ignore[misc]


@pytest.mark.parametrize("args, kwargs", [
    pytest.param((), {}, id="missing"),
    pytest.param((1, "x", (), 4), {}, id="too-many"),
    pytest.param((1,), {"d": 1}, id="unknown-keyword"),
])
def test_wrong_arguments_are_refused_as_before(args, kwargs):
    with pytest.raises(TypeError):
        Fast(*args, **kwargs)
    with pytest.raises(TypeError):
        Plain(*args, **kwargs)


def test_post_init_still_checks():
    assert Checked(1).n == 1
    with pytest.raises(ValueError):
        Checked(-1)


def test_a_default_factory_is_refused():
    with pytest.raises(TypeError):
        @slot_init
        @dataclass(frozen=True, slots=True)
        class Listed:
            items: list = field(default_factory=list)
