"""Worker metrics on their way to the one scrape endpoint: snapshot files in a shared directory.

Each worker writes its whole in-memory values (edge_ext.metric_values) to ``<pid>.json`` every
flush interval and once more when it stops; a write replaces the file atomically, so a reader
sees one snapshot or the next, never half of one. The supervisor sums the files when Prometheus
scrapes. When a worker exits, the supervisor folds its last snapshot into ``exited.json``: the
counters of an instance never go down when a worker restarts (Prometheus would read a reset),
and the directory holds one file per live worker plus one.

Bounds: a scrape lags the hot path by at most one flush interval; a worker killed without its
last flush (SIGKILL, OOM) loses at most the samples of its last interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from edge_ext.metric_values import Snapshot, families, merge, snapshot, unmerge

log = logging.getLogger("edge_ext.metrics")

# Set by the supervisor for its workers: where their snapshots go.
METRICS_DIR_ENV = "EDGE_EXT_METRICS_DIR"
EXITED = "exited.json"
# The scrape (a server thread) and the fold of an exited worker (the supervisor's loop) both
# read and replace files: one at a time, or a scrape could count a worker twice or not at all.
_files_lock = threading.Lock()


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_snapshot(path: Path, snap: Snapshot) -> None:
    _replace(path, json.dumps(snap, separators=(",", ":")))


def read_snapshot(path: Path) -> Snapshot:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("metrics file %s unreadable, skipped: %s", path.name, exc)
        return {}
    return data if isinstance(data, dict) else {}


def read_all(directory: Path) -> list[Snapshot]:
    return [read_snapshot(p) for p in sorted(directory.glob("*.json"))]


def fold_exited(directory: Path, pid: int) -> None:
    """Adds an exited worker's last snapshot to the exited total and removes its file."""
    path = directory / f"{pid}.json"
    with _files_lock:
        if not path.exists():
            return
        exited = directory / EXITED
        write_snapshot(exited, unmerge(merge([read_snapshot(exited), read_snapshot(path)])))
        path.unlink()


class WorkerFilesCollector:
    """The sum of every worker's snapshot, for the supervisor's registry."""

    def __init__(self, directory: Path, specs: Callable[[], Iterable]):
        self._directory, self._specs = directory, list(specs())

    def collect(self):
        with _files_lock:
            snaps = read_all(self._directory)
        # Like the multiprocess collector: a family appears once some worker has a series of it.
        return families(self._specs, merge(snaps), with_empty=False)


class MetricsFlusher:
    """A worker service (started and closed with the worker's servers): writes the snapshot."""

    def __init__(self, metrics, directory: str | Path, interval_s: float):
        self._metrics, self._interval = metrics, interval_s
        self._path = Path(directory) / f"{os.getpid()}.json"
        self._task: asyncio.Task | None = None
        self._written = ""
        self._failing = False

    async def start(self) -> None:
        self.flush()  # the worker's families exist from its start, as they did with mmap files
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        text = json.dumps(snapshot(self._metrics.families()), separators=(",", ":"))
        if text == self._written:
            return  # an idle worker does not rewrite the same file every interval
        try:
            _replace(self._path, text)
        except OSError as exc:
            if not self._failing:
                log.warning("metrics snapshot not written (scrapes show older values until it is): %s", exc)
            self._failing = True
            return
        self._written, self._failing = text, False

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.flush()  # the streams drained before this are counted
