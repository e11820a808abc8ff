"""Sweeps: cells (model x graph family x size x seed, or training seeds) run as tasks, in
this process or on a Dask cluster, with results appended to a keyed log.

* :class:`ResultLog` keeps one JSON line per finished cell in ``<out>/<name>.jsonl`` (written
  and flushed per cell; a line cut by a kill is dropped when the log is read again), so an
  interrupted sweep resumes and skips what is done, and a rerun never duplicates a row; the
  tidy tables (``<name>.csv``, ``<name>.json``, in cell order) are rebuilt from it atomically.
* :func:`run_cells` runs the cells not yet done: one after another here, or as Dask tasks
  (``cluster="local:N"``: a ``LocalCluster`` of N worker processes, one thread each while
  the native kernels use the machine's cores divided among the workers; ``"tcp://HOST:PORT"``:
  an existing scheduler; SLURM/PBS clusters through ``dask-jobqueue`` are reached by their
  scheduler address). A shared object (the models) is scattered to the workers once. A task
  that raises is retried (``retries``); a worker that dies is replaced by Dask and its task
  rerun elsewhere, up to Dask's ``allowed-failures``; a cell that still fails is logged as
  ``status: failed`` with the reason and is run again by the next sweep. Ctrl-C stops the
  sweep with the log and tables consistent.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys

from .._files import atomic_write, write_csv
from ..errors import EngineError


class ResultLog:
    """Rows keyed by their cell, appended to ``<out>/<name>.jsonl`` as cells finish."""

    def __init__(self, out: str | None, name: str = "results", *, tables: bool = True):
        """``out`` None: rows kept in memory only (an in-process sweep without files).
        ``tables`` False: the caller writes its own tables from the rows (nested rows)."""
        self.out, self.name, self.tables = out, name, tables
        self.path = os.path.join(out, f"{name}.jsonl") if out is not None else None
        self.rows: dict = {}  # key (a JSON string) -> row
        if self.path is not None and os.path.exists(self.path):
            self._load()

    def _load(self) -> None:
        good = 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # a line cut by a kill: dropped
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break
                self.rows[row["cell"]] = row
                good += len(raw)
        if good != os.path.getsize(self.path):
            with open(self.path, "r+b") as fh:
                fh.truncate(good)

    def done(self, key: str) -> bool:
        return self.rows.get(key, {}).get("status") == "ok"

    def append(self, row: dict) -> None:
        self.rows[row["cell"]] = row
        if self.path is None:
            return
        os.makedirs(self.out, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def table(self, keys) -> list:
        """The rows of ``keys`` (cell order) that exist, without their key column."""
        return [{c: v for c, v in self.rows[k].items() if c != "cell"} for k in keys if k in self.rows]

    def write_tables(self, keys) -> list:
        rows = self.table(keys)
        if self.path is None or not self.tables:
            return rows
        os.makedirs(self.out, exist_ok=True)

        def write_json(tmp):
            with open(tmp, "w") as fh:
                json.dump(rows, fh, indent=1)

        write_csv(os.path.join(self.out, f"{self.name}.csv"), rows)
        atomic_write(os.path.join(self.out, f"{self.name}.json"), write_json)
        return rows


def report_failed(rows: list) -> int:
    """Print one line on stderr per failed row (status other than ok); returns how many."""
    failed = [r for r in rows if r.get("status") != "ok"]
    for r in failed:
        where = " ".join(f"{k}={r[k]}" for k in ("n", "seed") if k in r)
        print(f"failed: {r.get('model')} {where}: {r.get('reason')}", file=sys.stderr)
    return len(failed)


def cell_key(cell: dict) -> str:
    """A cell's key: its fields as canonical JSON."""
    return json.dumps(cell, sort_keys=True)


def _needs_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise EngineError("--cluster needs Dask: pip install 'engine[distributed]' (dask.distributed)") from None


@contextlib.contextmanager
def sweep_client(cluster: str | None):
    """``None`` (no cluster), or a Dask client for ``local:N`` or ``tcp://HOST:PORT``; yields
    ``(client, threads_per_task)``."""
    if cluster is None:
        yield None, None
        return
    _needs_distributed()
    import distributed

    if cluster.startswith("local:"):
        try:
            workers = int(cluster.split(":", 1)[1])
        except ValueError:
            workers = 0
        if workers < 1:
            raise EngineError(f"--cluster local:N needs a positive number of workers, got {cluster!r}")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=40) as lc, \
                distributed.Client(lc) as client:
            yield client, threads
        return
    if cluster.startswith("tcp://"):
        try:
            client = distributed.Client(cluster, timeout="20s")
        except OSError as exc:
            raise EngineError(f"--cluster {cluster}: cannot reach the scheduler ({exc})") from None
        with client:
            yield client, None
        return
    raise EngineError(f"--cluster must be local:N or tcp://HOST:PORT, got {cluster!r}")


def _failed(cell: dict, key: str, exc: BaseException) -> dict:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    return dict(cell, cell=key, status="failed", reason=reason)


def _bar(total: int, desc: str, enabled: bool, done: int):
    from .._progress import bar

    return bar(total, desc, "cell", enabled, initial=done)


def run_cells(cells: list, task, log: ResultLog, *, shared=None, cluster: str | None = None, retries: int = 1,
              desc: str = "cells", progress: bool = True, memory=None) -> list:
    """Run ``task(cell, shared, threads) -> row`` for every cell (a dict of plain values) not
    yet done in ``log``; returns the rows of all cells, in cell order.

    ``memory(cell) -> bytes`` (optional) estimates a cell's peak memory: a cell that cannot
    fit in a worker (or, without a cluster, in this process) is refused before anything runs.
    """
    keys = [cell_key(c) for c in cells]
    todo = [(c, k) for c, k in zip(cells, keys) if not log.done(k)]
    bar = _bar(len(cells), desc, progress, len(cells) - len(todo))
    failed = running = 0

    def finish(cell, key, row=None, exc=None):
        nonlocal failed
        if exc is not None:
            row = _failed(cell, key, exc)
            failed += 1
        else:
            row = dict(cell, cell=key, status="ok", **row)
        log.append(row)
        bar.update(1)
        bar.set_postfix(running=running, failed=failed)

    try:
        with sweep_client(cluster) as (client, threads):
            if memory is not None and todo:
                _check_memory(todo, memory, client)
            if client is None:
                for cell, key in todo:
                    try:
                        row = task(cell, shared, None)
                    except (EngineError, MemoryError) as exc:
                        finish(cell, key, exc=exc)
                    else:
                        finish(cell, key, row)
            else:
                from distributed import as_completed

                link = getattr(client, "dashboard_link", None)
                if link:
                    print(f"dask dashboard: {link}", file=sys.stderr, flush=True)
                shared_f = client.scatter(shared, broadcast=True) if shared is not None else None
                futures = {}
                for cell, key in todo:
                    f = client.submit(task, cell, shared_f, threads, retries=retries, pure=False)
                    futures[f] = (cell, key)
                running = len(futures)
                for f in as_completed(futures):
                    cell, key = futures.pop(f)
                    running = len(futures)
                    try:
                        row = f.result()
                    except Exception as exc:  # noqa: BLE001 - a task's or a lost worker's error: logged
                        finish(cell, key, exc=exc)
                    else:
                        finish(cell, key, row)
    finally:
        bar.close()
        log.write_tables(keys)
    return log.table(keys)


def _check_memory(todo, memory, client) -> None:
    from .._memory import available_bytes

    if client is None:
        limit, where = int(available_bytes() * 0.9), "this process"
    else:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
        limit = min(limits) if limits and min(limits) > 0 else int(available_bytes() * 0.9)
        where = "a worker"
    for cell, _ in todo:
        need = memory(cell)
        if need > limit:
            raise EngineError(f"cell {cell} needs about {need / 2**30:.2f} GiB, more than {where} has "
                              f"({limit / 2**30:.2f} GiB): use fewer workers per machine, larger machines, "
                              "or leave this size out")
