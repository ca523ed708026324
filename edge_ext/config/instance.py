"""One instance, one private directory.

Worker sockets, the admin sockets and token, the disk cache, breaker and latency state and the
local spend ledger of an instance live in one directory that belongs to it alone. Whoever can
write there can talk to the workers (and so ask for provider credentials), plant cache entries
or rewrite spend, so the directory must be the service user's and closed to everyone else
(0700). A directory that exists with another owner or wider permissions is refused rather than
fixed: someone else created it first, and may still hold an open handle or a socket inside.

By default each config file gets its own directory under ``$XDG_STATE_HOME/edge-ext`` (or
``~/.local/state/edge-ext``): two edges started from different configs never share a cache or a
budget, and one edge keeps its state across its own restarts.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from edge_ext.errors import ConfigError


class UnsafeStateDir(ConfigError):
    code = "state_dir_unsafe"


def state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "edge-ext"


def default_state_dir(config_path: str | os.PathLike | None) -> str:
    """``<state home>/<config file stem>-<hash of its absolute path>``; ``default`` without a file."""
    if config_path is None:
        return str(state_home() / "default")
    path = Path(config_path).resolve()
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:32] or "config"
    # Short: Unix socket paths are limited to 107 bytes.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return str(state_home() / f"{stem}-{digest}")


def check_private(path: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeStateDir(f"{path} is not a directory (a symlink or a file is refused)")
    if info.st_uid != os.geteuid():
        raise UnsafeStateDir(f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): "
                             "another user created it; choose another processor.state_dir or remove it")
    if info.st_mode & 0o077:
        raise UnsafeStateDir(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0700 (others could reach "
                             f"the worker sockets, the cache and the spend ledger): chmod 700 {path}")


def ensure_private_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` 0700, or check that the existing one is ours and closed to others."""
    path = Path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    check_private(path)
    return path


# sun_path is 108 bytes on Linux, NUL included.
MAX_SOCKET_PATH = 107


def check_socket_path(path: str) -> None:
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise UnsafeStateDir(f"the socket path {path} is {len(path.encode())} bytes; Unix sockets allow {MAX_SOCKET_PATH}: "
                             "set processor.state_dir (or a unix: processor.address) to a shorter directory")


def admin_token(path: str | os.PathLike, create: bool) -> str:
    """The admin API's bearer token; generated (0600) when ``create`` and missing."""
    p = Path(path)
    if create and not p.exists():
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
    token = p.read_text().strip()
    if len(token) < 16:
        raise UnsafeStateDir(f"the admin token in {p} is shorter than 16 characters")
    return token
