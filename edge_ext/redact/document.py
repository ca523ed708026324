"""A parsed JSON document as one text: scanned in one pass, redacted back in place.

Every object key, every string and every number long enough to hold a finding is written into
one text, so a body of thousands of short strings costs one scan instead of thousands (each scan
has a fixed cost of a few microseconds). An object member ``"name": "value"`` is written as
``name: value``, so a secret named by its key (``{"password": "..."}``) is found as it would be
in the JSON text; other pieces are separated by a newline, which no pattern crosses (a PEM
block aside). A string that is itself a JSON object or array (tool-call arguments) is read as the
document it is and redacted through it; with a duplicate key, Python would keep only the last
value, so it is read as plain text instead. ``skip`` leaves values out (binary payloads), and
``limit`` bounds the work: text plus one per JSON value.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from edge_ext.redact.api import KINDS, placeholder
from edge_ext.redact.scanning import Finding, _scan

_VALUE, _KEY, _NUMBER = 0, 1, 2
# Smaller numbers cannot hold a finding (the shortest numeric one is 7 characters); a larger
# one can be a card number, sent as a JSON number.
_MIN_NUMBER = 10**6
_JSON_START = frozenset("{[ \t\r\n")
# The slots whose string the provider (or our translator) decodes as JSON: tool-call arguments.
# Any other string is text the model reads as written: scanned and redacted as text, never
# re-serialized (that would change its formatting and numbers).
_JSON_SLOTS = frozenset({"arguments"})
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# skip(holder, key, value, parent_key) -> True: the value is not text (e.g. base64 image data).
Skip = Callable[[Any, Any, str, Any], bool]


class ScanLimitExceeded(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"more than {limit} characters to scan")
        self.limit = limit


class KeyCollision(ValueError):
    """Redacting two keys of one object would give them the same name."""


class _Segment(NamedTuple):
    start: int
    end: int
    holder: Any
    slot: Any
    role: int
    doc: int  # 0: the root document; n: the n-th string read as JSON


def _no_skip(holder: Any, key: Any, value: str, parent_key: Any) -> bool:
    return False


def _nested(value: str) -> Any:
    """The object or array a string holds, or None."""
    head, tail = value.lstrip()[:1], value.rstrip()[-1:]
    if not ((head == "{" and tail == "}") or (head == "[" and tail == "]")):
        return None
    try:
        return json.loads(value, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


class Document:
    def __init__(self, root: dict | list, *, skip: Skip = _no_skip, limit: int | None = None):
        # Segments flat, six slots each in the _Segment layout, and parents in two dicts: a
        # tuple per string would be a long-lived tracked object, and a body of 100,000 of them
        # keeps the garbage collector busy (2-3x the time of the walk itself).
        self._segs: list[Any] = []
        # (holder, slot, parsed, parent doc) of each string read as JSON, in discovery order.
        self.nested: list[tuple[Any, Any, Any, int]] = []
        # id(container) -> its container and slot there: for naming where a finding is.
        self._up_holder: dict[int, Any] = {}
        self._up_slot: dict[int, Any] = {}
        self.text = self._flatten(root, skip, limit)

    def _flatten(self, root: dict | list, skip: Skip, limit: int | None) -> str:
        parts: list[str] = []
        append, segs, up_holder, up_slot, nested = parts.append, self._segs, self._up_holder, self._up_slot, self.nested
        cap, pos = limit if limit is not None else float("inf"), 0
        containers, parent_keys, docs = [root], [None], [0]
        while containers:
            container, parent_key, doc = containers.pop(), parent_keys.pop(), docs.pop()
            keyed = type(container) is dict
            for slot, value in container.items() if keyed else enumerate(container):
                if keyed:
                    append(slot)
                    segs.extend((pos, pos + len(slot), container, slot, _KEY, doc))
                    pos += len(slot)
                kind, text, child = type(value), None, None
                if kind is str:
                    if (keyed and slot in _JSON_SLOTS and value and value[0] in _JSON_START
                            and (child := _nested(value)) is not None):
                        nested.append((container, slot, child, doc))
                        child_doc = len(nested)
                    elif not skip(container, slot, value, parent_key):
                        text, role = value, _VALUE
                elif kind is dict or kind is list:
                    child, child_doc = value, doc
                elif (kind is int or kind is float) and abs(value) >= _MIN_NUMBER:
                    text, role = repr(value), _NUMBER
                if child is not None:
                    up_holder[id(child)], up_slot[id(child)] = container, slot
                    containers.append(child)
                    parent_keys.append(slot if keyed else parent_key)
                    docs.append(child_doc)
                elif text is not None:
                    if keyed:
                        append(": ")
                        pos += 2
                    append(text)
                    segs.extend((pos, pos + len(text), container, slot, role, doc))
                    pos += len(text)
                # One separator per value, whatever it is: the limit counts values too.
                append("\n")
                pos += 1
                if pos > cap:
                    raise ScanLimitExceeded(limit or 0)
        return "".join(parts)

    def segment(self, index: int) -> _Segment:
        return _Segment(*self._segs[6 * index:6 * index + 6])

    def scan(self, *, scrub: bool) -> list[tuple[int, Finding]]:
        """(segment index, finding clipped to the segment) pairs, in text order."""
        findings = _scan(self.text, None, use_islands=True, scrub=scrub)
        if not findings:
            return []
        starts, ends = self._segs[0::6], self._segs[1::6]
        hits: list[tuple[int, Finding]] = []
        for f in findings:
            i = max(bisect.bisect_right(starts, f.start) - 1, 0)
            while i < len(starts) and starts[i] < f.end:
                start, end = max(f.start, starts[i]), min(f.end, ends[i])
                if start < end:
                    hits.append((i, Finding(f.kind, start - starts[i], end - starts[i])))
                i += 1
        return hits

    def redact(self) -> list[str]:
        """Replace every finding in place; the kinds found, in the order of KINDS."""
        hits = self.scan(scrub=True)
        edits: dict[int, list[Finding]] = {}
        for index, finding in hits:
            edits.setdefault(index, []).append(finding)
        dirty = [False] * (len(self.nested) + 1)
        renames: dict[int, tuple[int, Any, dict[str, str]]] = {}
        for index, found in edits.items():
            seg = self.segment(index)
            clean = "".join(_pieces(self.text[seg.start:seg.end], found))
            dirty[seg.doc] = True
            if seg.role == _KEY:
                renames.setdefault(id(seg.holder), (seg.doc, seg.holder, {}))[2][seg.slot] = clean
            else:
                seg.holder[seg.slot] = clean
        by_doc: dict[int, list[tuple[Any, dict[str, str]]]] = {}
        for doc, holder, names in renames.values():
            by_doc.setdefault(doc, []).append((holder, names))
        # Innermost first: a document is renamed, then written back as a string into its
        # parent, before the parent's own keys are renamed.
        for doc in range(len(self.nested), -1, -1):
            for holder, names in by_doc.get(doc, ()):
                _rename(holder, names)
            if doc and dirty[doc]:
                holder, slot, parsed, parent = self.nested[doc - 1]
                holder[slot] = json.dumps(parsed, ensure_ascii=False)
                dirty[parent] = True
        return kinds_of(hits)

    def where(self, index: int, hits: list[tuple[int, Finding]]) -> str:
        """A path to a segment, e.g. ``messages[0].tool_calls[1].function.arguments``. Keys
        that are not plain names, or that hold a finding, show as ``*``: an error never repeats
        what it refuses."""
        flagged = set()
        for i, _ in hits:
            seg = self.segment(i)
            if seg.role == _KEY:
                flagged.add((id(seg.holder), seg.slot))
        seg = self.segment(index)
        names: list[str] = []
        holder, slot = seg.holder, (None if seg.role == _KEY else seg.slot)
        while True:
            if isinstance(slot, int):
                names.append(f"[{slot}]")
            elif slot is not None:
                plain = _PLAIN_NAME.fullmatch(slot) and (id(holder), slot) not in flagged
                names.append("." + (slot if plain else "*"))
            if id(holder) not in self._up_holder:
                break
            holder, slot = self._up_holder[id(holder)], self._up_slot[id(holder)]
        return "".join(reversed(names)).lstrip(".")


def kinds_of(hits: list[tuple[int, Finding]]) -> list[str]:
    present = {f.kind for _, f in hits}
    return [k for k in KINDS if k in present]


def _pieces(text: str, found: list[Finding]):
    pos = 0
    for f in found:
        yield text[pos:f.start]
        yield placeholder(f.kind)
        pos = f.end
    yield text[pos:]


def _rename(holder: dict, names: dict[str, str]) -> None:
    items = list(holder.items())
    holder.clear()
    for key, value in items:
        new = names.get(key, key)
        if new in holder:
            raise KeyCollision("two keys of one object would have the same name once redacted")
        holder[new] = value
