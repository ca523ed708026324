"""A cheaper ``__init__`` for the frozen, slotted dataclasses built once per request or outcome.

The ``__init__`` dataclasses writes for a frozen class sets each field with
``object.__setattr__(self, name, value)``: a lookup of the name through the class for every
field, most of the cost of building a five-field record. The slots' own setters do the same
store without the lookup. Everything else the dataclass decorator made (equality, hashing,
repr, refusing assignment) is left as it is.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import TypeVar

T = TypeVar("T")


def slot_init(cls: type[T]) -> type[T]:
    """Replaces ``cls.__init__`` by one with the same parameters and defaults that stores each
    field through its slot, then runs ``__post_init__`` if the class has one. Apply it on top
    of ``@dataclass(frozen=True, slots=True)``; a field with a default factory is refused."""
    names, namespace, params = [], {}, []
    for f in fields(cls):
        if f.default_factory is not MISSING or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: slot_init takes plain fields only")
        names.append(f.name)
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = [f"    _set_{name}(self, {name})" for name in names]
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]), namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init
    return cls
