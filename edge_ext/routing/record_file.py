"""Named fixed-size records in one mmap'd file, shared by independent processes on one machine.

The worker processes are started separately (not forked from one parent), so the only thing
they can share without a server is a file. Layout: a 64-byte header (magic, record size,
capacity, generation) then ``capacity`` slots of ``name | payload``. Slots are handed out in
order and never freed, so a name keeps its slot for the life of the file.

Writers take an exclusive ``flock`` and bump the generation; readers take a shared one. The
generation is what makes reads cheap: a reader keeps its last snapshot and only re-reads (under
the lock) when the 8-byte counter moved, which costs one ``unpack_from`` on the mapped page.
An aligned 8-byte load is not torn on the platforms we run on, and a stale value only delays
the re-read to the next call.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

_HEADER = struct.Struct("<8sIIQ")  # magic, slot size, capacity, generation
_GENERATION = struct.Struct("<Q")
_GENERATION_AT = 16
HEADER_SIZE = 64
NAME_SIZE = 96  # one length byte + up to 95 bytes of UTF-8


class RecordFileFull(RuntimeError):
    pass


def _slot_size(payload: struct.Struct) -> int:
    return (NAME_SIZE + payload.size + 7) // 8 * 8


class RecordFile:
    def __init__(self, path: str | os.PathLike[str], payload: struct.Struct, capacity: int = 512,
                 magic: bytes = b"EDGEREC1"):
        if len(magic) != 8:
            raise ValueError("magic must be 8 bytes")
        self.path = os.fspath(path)
        self._payload = payload
        self._slot = _slot_size(payload)
        self._capacity = capacity
        self._size = HEADER_SIZE + capacity * self._slot
        self._magic = magic
        # flock excludes other open files, not other threads sharing this descriptor.
        self._thread_lock = threading.Lock()
        self._index: dict[str, int] = {}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            with self._locked(fcntl.LOCK_EX):
                self._initialise()
            self._mm = mmap.mmap(self._fd, self._size)
        except BaseException:
            os.close(self._fd)
            raise

    def _initialise(self) -> None:
        expected = (self._magic, self._slot, self._capacity)
        if os.fstat(self._fd).st_size == self._size:
            magic, slot, capacity, _ = _HEADER.unpack(os.pread(self._fd, _HEADER.size, 0))
            if (magic, slot, capacity) == expected:
                return
        # New file, or one left by a build with another layout: its contents mean nothing to us.
        os.ftruncate(self._fd, self._size)
        os.pwrite(self._fd, bytes(self._size), 0)
        os.pwrite(self._fd, _HEADER.pack(*expected, 0), 0)

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, mode)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def generation(self) -> int:
        return _GENERATION.unpack_from(self._mm, _GENERATION_AT)[0]

    def _name_at(self, index: int) -> str | None:
        offset = HEADER_SIZE + index * self._slot
        length = self._mm[offset]
        if length == 0:
            return None
        return self._mm[offset + 1:offset + 1 + length].decode("utf-8", "replace")

    def _rows(self) -> dict[str, tuple]:
        rows: dict[str, tuple] = {}
        for index in range(self._capacity):
            name = self._name_at(index)
            if name is None:
                break
            self._index[name] = index
            rows[name] = self._payload.unpack_from(self._mm, HEADER_SIZE + index * self._slot + NAME_SIZE)
        return rows

    def snapshot(self) -> tuple[int, dict[str, tuple]]:
        """The generation and every record, read consistently."""
        with self._locked(fcntl.LOCK_SH):
            return self.generation(), self._rows()

    def update(self, name: str, change: Callable[[tuple | None], tuple]) -> tuple:
        """Atomically replace ``name``'s record with ``change(current)`` (None when absent)."""
        done = self.update_all({name: change})
        if name not in done:
            raise RecordFileFull(f"{self.path}: all {self._capacity} record slots are taken")
        return done[name]

    def update_all(self, changes: Mapping[str, Callable[[tuple | None], tuple]]) -> dict[str, tuple]:
        """``update`` for several records under one lock, in order: the new records by name.
        A new record past the file's capacity is not written, and missing from the result."""
        encoded = {name: name.encode("utf-8") for name in changes}
        for name, raw in encoded.items():
            if not 0 < len(raw) < NAME_SIZE:
                raise ValueError(f"record name must be 1-{NAME_SIZE - 1} bytes of UTF-8: {name!r}")
        done: dict[str, tuple] = {}
        with self._locked(fcntl.LOCK_EX):
            changed = False
            for name, change in changes.items():
                index = self._index.get(name)
                if index is None:
                    self._rows()
                    index = self._index.get(name)
                current = None
                if index is None:
                    index = len(self._index)
                    if index >= self._capacity:
                        continue
                else:
                    current = self._payload.unpack_from(self._mm, HEADER_SIZE + index * self._slot + NAME_SIZE)
                new = done[name] = change(current)
                if new != current:
                    offset = HEADER_SIZE + index * self._slot
                    self._payload.pack_into(self._mm, offset + NAME_SIZE, *new)
                    if current is None:
                        raw = encoded[name]
                        self._mm[offset + 1:offset + 1 + len(raw)] = raw
                        self._mm[offset] = len(raw)
                        self._index[name] = index
                    changed = True
            if changed:
                _GENERATION.pack_into(self._mm, _GENERATION_AT, self.generation() + 1)
        return done

    def close(self) -> None:
        with self._thread_lock:
            if not self._mm.closed:
                self._mm.close()
                os.close(self._fd)
