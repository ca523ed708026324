"""How the disk L2 cache stores rows: str keys and bytes (or integer) values, in SQLite, nothing
else. (The disk budget ledger is a plain SQLite table of integers, edge_ext.cost.ledgers.)

diskcache's own Disk pickles any key or value that is not a plain str, bytes or number, and
unpickles whatever a row says is pickled (``raw = 0`` keys, ``MODE_PICKLE`` values), and reads
or deletes any file a row names. Rows are only as trusted as everyone who can write the cache
directory; an unpickled row runs code in the workers, a file name may point anywhere. This Disk
writes only str keys and bytes or int values inline in SQLite (no value files), and refuses on
read any row it could not have written: an error for the caller (the cache counts a miss),
never code, never a file.
"""

from __future__ import annotations

import re
import sqlite3
from os import path as op

import diskcache
from diskcache.core import MODE_RAW


class UnsafeRow(ValueError):
    """A stored row this Disk did not write (pickled, or pointing at a file)."""


# diskcache's own value files ("ab/cd/<28 hex>.val"), left by caches written before this Disk.
_VALUE_FILE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val$")


def _plain(value) -> bool:
    # Exact types: a subclass (bool, an int or bytes subclass) is not what was stored.
    return type(value) is bytes or (type(value) is int and -(2**63) <= value < 2**63)


class PlainDisk(diskcache.Disk):
    def __init__(self, directory: str, **settings):
        # disk_* settings come from the database's Settings table (min_file_size,
        # pickle_protocol): none of them applies to a Disk that never pickles nor writes files.
        super().__init__(directory)

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"disk cache keys are str, not {type(key).__name__}")
        return key, True

    def get(self, key, raw):
        if not raw or type(key) is not str:
            raise UnsafeRow("a disk cache row has a key this cache never writes (pickled or binary)")
        return key

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if read or not _plain(value):
            raise TypeError(f"disk cache values are bytes or 64-bit integers, not {type(value).__name__}")
        # Inline, whatever the size: a row never names a file.
        return 0, MODE_RAW, None, sqlite3.Binary(value) if type(value) is bytes else value

    def fetch(self, mode, filename, value, read):
        if mode != MODE_RAW or filename is not None or read or not _plain(value):
            raise UnsafeRow("a disk cache row holds a value this cache never writes (pickled, a file, or not bytes nor an integer)")
        return value

    def filename(self, key=diskcache.core.UNKNOWN, value=diskcache.core.UNKNOWN):
        raise TypeError("this disk cache writes no value files")

    def remove(self, file_path):
        # diskcache deletes the file of a row it drops. Only a file of its own naming under the
        # directory: a planted row must not make the workers delete elsewhere.
        if isinstance(file_path, str) and _VALUE_FILE.match(file_path.replace(op.sep, "/")):
            super().remove(file_path)
