"""Dataset storage: a folder of sealed shards plus one working SQLite file.

A dataset directory holds

- **shards** (``shard-00001-<space>-<id>.hwds``, see :mod:`shards`): compact,
  checksummed, append-only files.  Once written, a shard is never opened for
  writing again, so the files a repository commits never change and a clone
  downloads each network once.
- at most one **working store**, ``dataset.sqlite`` in WAL mode, where a running
  build or import writes.  Every finished sample is one small transaction, so a
  build killed at any moment (even ``kill -9``) leaves a consistent file that loses
  only the samples in flight; the next run continues in it.  When a run ends (and
  every ``seal_every`` networks) the working store is *sealed*: its rows are
  written into new shards and the file is removed.  A folder made by an older
  hwnas (one ``dataset.sqlite``, no shards) is a working store too: everything
  reads it, and ``hwnas dataset seal`` (or the next build) turns it into shards.

Readers see the union: the shards in the order they were written, then the
working store.  A network is stored once (its first record wins: a later copy is
the same network); a label of (network, target) stored again replaces the earlier
one, as relabelling does.  One writer at a time: a build or import takes an
exclusive lock on the folder (``.hwnas-lock``) and a second one is refused.
Readers take no lock: shards appear by atomic rename and SQLite serves readers
during writes.

Tables of the working store:
- ``networks``: one row per distinct architecture: space, arch (JSON), arch_id,
  weight seed, status (``ok``/``failed``) and failure reason, the TFLite graph
  compacted (constant payload zeroed, see ``strip_constant_buffers``) and
  zstd-compressed, and the SHA-256 of the original file (exporting the same arch
  and seed again reproduces it; the builder checks this before it labels later).
  A network exported in another regime than int8 (``hwnas dataset build --quantize``)
  is a sample of its own, keyed ``<arch_id>@<regime>`` (:func:`sample_key`): the
  same arch and weight seed, the regime's own file and labels.
- ``labels``: one row per (arch_id, target): metrics (JSON) or failure reason.
- ``runs``: provenance of every build/import: command, package versions (hwnas,
  Vela, TensorFlow, LiteRT), target settings, machine.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from search_spaces.errors import HwnasError

from predictors.dataset.shards import Shard, ShardError, list_shards, shard_name, shard_seq, write_shard

DB_NAME = "dataset.sqlite"
LOCK_NAME = ".hwnas-lock"
SCHEMA_VERSION = 1
SEAL_EVERY = 2000  # networks in the working store before a running build seals them into a shard
SHARD_NETWORKS = 5000  # at most this many networks per shard when sealing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (
    arch_id TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    arch TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    tflite BLOB,
    tflite_sha256 TEXT,
    tflite_bytes INTEGER,
    export_s REAL,
    run_id INTEGER,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS networks_space ON networks (space, status);
CREATE TABLE IF NOT EXISTS labels (
    arch_id TEXT NOT NULL REFERENCES networks (arch_id),
    target TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    metrics TEXT,
    run_id INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (arch_id, target)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    kind TEXT NOT NULL,
    command TEXT NOT NULL,
    provenance TEXT NOT NULL
);
"""


REGIME_SEP = "@"
DEFAULT_REGIME = "int8"


def sample_key(arch_id: str, quantize: str = DEFAULT_REGIME) -> str:
    """The key of a network's sample in a regime: the arch_id itself for int8 (as every
    dataset before regimes stored it), ``<arch_id>@<regime>`` for the others."""
    return arch_id if quantize == DEFAULT_REGIME else f"{arch_id}{REGIME_SEP}{quantize}"


def split_key(key: str) -> tuple[str, str]:
    """``(arch_id, regime)`` of a sample key."""
    arch_id, _, regime = key.partition(REGIME_SEP)
    return arch_id, regime or DEFAULT_REGIME


def compress(data: bytes) -> bytes:
    """A working-store blob: fast (it lives until the seal, which compresses the shard hard)."""
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


def decompress(blob: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(blob)


class _Lock:
    """An exclusive, non-blocking lock on a dataset folder (released when the process dies)."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise HwnasError(f"{directory}: another build or import is writing this dataset ({holder}); "
                             "wait for it to finish, or write to another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()}".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class DatasetStore:
    """A dataset directory: its shards and its working store, read as one.

    Args:
        directory: the folder.
        create: make the folder (and write to it); without it, a folder with no
            dataset is an error.
        skip_bad_shards: warn about a corrupt or truncated shard and read the others,
            instead of raising :class:`~predictors.dataset.shards.ShardError` (default:
            environment ``HWNAS_SKIP_BAD_SHARDS=1``, which ``--skip-bad-shards`` sets).
            A writer never skips: it would seal its rows beside a shard nobody can read.
    """

    def __init__(self, directory: str | os.PathLike, create: bool = False, skip_bad_shards: bool | None = None):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self._lock: _Lock | None = None
        self.conn: sqlite3.Connection | None = None
        if create:
            if self.directory.exists() and not self.directory.is_dir():
                raise HwnasError(f"{self.directory}: exists and is not a directory")
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = _Lock(self.directory)
        elif not self.directory.is_dir() or not (self.path.exists() or list_shards(self.directory)):
            raise HwnasError(f"{self.directory}: no dataset here (expected shard-*.hwds files or {DB_NAME}); "
                             "build one with `hwnas dataset build`")
        if skip_bad_shards is None:
            skip_bad_shards = os.environ.get("HWNAS_SKIP_BAD_SHARDS", "") not in ("", "0")
        self.skip_bad_shards = bool(skip_bad_shards) and not create
        try:
            self._load_shards()
            if self.path.exists():
                self._open_working()
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------

    def _open_working(self) -> None:
        try:
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if self._lock is not None:
                self.conn.executescript(_SCHEMA)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            else:
                self.conn.execute("SELECT 1 FROM networks LIMIT 1")
        except sqlite3.DatabaseError as exc:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            raise HwnasError(f"{self.path}: not a readable dataset database ({exc})") from None

    def _load_shards(self) -> None:
        """The shards' rows, merged: networks (first record wins), labels (last wins), runs."""
        self.shards: list[Shard] = []
        self.bad_shards: list[str] = []
        self._networks: dict[str, dict] = {}  # arch_id -> row (no graph)
        self._where: dict[str, tuple[int, int]] = {}  # arch_id -> (shard, position) of its first record
        self._labels: dict[tuple[str, str], dict] = {}
        self._runs: dict[int, dict] = {}
        for path in list_shards(self.directory):
            try:
                shard = Shard(path)
                networks, labels, runs = shard.networks(), shard.labels(), shard.runs()
            except ShardError as exc:
                if not self.skip_bad_shards:
                    raise
                self.bad_shards.append(str(path))
                print(f"hwnas: warning: {exc}; skipped", file=sys.stderr)
                continue
            index = len(self.shards)
            self.shards.append(shard)
            for k, row in enumerate(networks):
                if row["arch_id"] not in self._networks:
                    self._networks[row["arch_id"]] = row
                    self._where[row["arch_id"]] = (index, k)
            for row in labels:
                self._labels[(row["arch_id"], row["target"])] = row
            for row in runs:
                self._runs.setdefault(row["run_id"], row)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "DatasetStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _writable(self) -> sqlite3.Connection:
        """The working store, created on the first write."""
        if self._lock is None:
            raise HwnasError(f"{self.directory}: opened for reading; open with create=True to write")
        if self.conn is None:
            self._open_working()
        return self.conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writable()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _working(self, query: str, args: tuple = ()) -> list[tuple]:
        return self.conn.execute(query, args).fetchall() if self.conn is not None else []

    # -- writes ------------------------------------------------------------------

    def start_run(self, kind: str, command: dict[str, Any], provenance: dict[str, Any]) -> int:
        """Records a run; its id is unique in the folder (shards included)."""
        with self.transaction() as c:
            run_id = max([*self._runs, *(r for (r,) in c.execute("SELECT run_id FROM runs"))], default=0) + 1
            c.execute("INSERT INTO runs (run_id, started, kind, command, provenance) VALUES (?, ?, ?, ?, ?)",
                      (run_id, time.time(), kind, json.dumps(command, sort_keys=True),
                       json.dumps(provenance, sort_keys=True)))
            return run_id

    def add_network(self, *, arch_id: str, space: str, arch: dict, seed: int, status: str,
                    reason: str | None = None, tflite: bytes | None = None, tflite_sha256: str | None = None,
                    tflite_bytes: int | None = None, export_s: float | None = None, run_id: int | None = None,
                    labels: dict[str, dict] | None = None) -> None:
        """Records one network and its labels in one transaction (all or nothing)."""
        if arch_id in self._networks:
            return  # sealed already: a network is stored once
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO networks (arch_id, space, arch, seed, status, reason, tflite, tflite_sha256,"
                " tflite_bytes, export_s, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (arch_id, space, json.dumps(arch, sort_keys=True), int(seed), status, reason,
                 compress(tflite) if tflite is not None else None, tflite_sha256, tflite_bytes, export_s, run_id,
                 time.time()),
            )
            for target, label in (labels or {}).items():
                self._put_label(c, arch_id, target, label, run_id)

    def add_labels(self, arch_id: str, labels: dict[str, dict], run_id: int | None = None) -> None:
        with self.transaction() as c:
            for target, label in labels.items():
                self._put_label(c, arch_id, target, label, run_id)

    @staticmethod
    def _put_label(c: sqlite3.Connection, arch_id: str, target: str, label: dict, run_id: int | None) -> None:
        """``label`` is ``{"metrics": {...}}`` or ``{"error": reason}``."""
        ok = "metrics" in label
        c.execute(
            "INSERT OR REPLACE INTO labels (arch_id, target, status, reason, metrics, run_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (arch_id, target, "ok" if ok else "failed", None if ok else str(label.get("error")),
             json.dumps(label["metrics"], sort_keys=True) if ok else None, run_id, time.time()),
        )

    def merge(self, src: "DatasetStore") -> dict[str, int]:
        """Adds another dataset folder's runs, networks and labels to this one (open for writing).

        ``src``'s runs get ids past this folder's (each keeps its command and provenance, plus
        ``merged_from``); a network this folder has already is kept; of two labels of one
        network and target the newer stays (``created``), as a relabelling would leave it:
        ``src``'s replaces an older one here, and a label relabelled here after ``src`` was
        copied stays. What both have (``src`` a copy of this folder: the same run, the same
        label) is kept once, as it is. One transaction: a merge killed half way adds
        nothing. Call :meth:`seal` after it. Two machines (or two cores, each with its own
        copy) can so label the same dataset at once.
        """
        if self._lock is None:
            raise HwnasError(f"{self.directory}: open the destination with create=True to merge into it")
        if src.directory.resolve() == self.directory.resolve():
            raise HwnasError(f"{src.directory}: a dataset cannot be merged into itself")
        stats = {"runs": 0, "networks": 0, "labels": 0, "kept": 0, "older": 0}
        with self.transaction() as c:
            mine = self.run_rows()
            same = {(r["started"], r["kind"], json.dumps(r["command"], sort_keys=True)): r["run_id"] for r in mine}
            next_id = max([0, *(r["run_id"] for r in mine)]) + 1
            runs: dict[int, int] = {}
            for run in src.run_rows():
                key = (run["started"], run["kind"], json.dumps(run["command"], sort_keys=True))
                if key in same:  # a run both have (src is a copy of this folder): one record
                    runs[run["run_id"]] = same[key]
                    continue
                runs[run["run_id"]] = next_id
                provenance = {**run["provenance"],
                              "merged_from": {"dataset": str(src.directory), "run_id": run["run_id"]}}
                c.execute("INSERT INTO runs (run_id, started, kind, command, provenance) VALUES (?, ?, ?, ?, ?)",
                          (next_id, run["started"], run["kind"], json.dumps(run["command"], sort_keys=True),
                           json.dumps(provenance, sort_keys=True)))
                next_id += 1
                stats["runs"] += 1
            mine_labels = {(r["arch_id"], r["target"]): (r["created"], r["status"], r["metrics"])
                           for r in self.label_rows()}
            have = set(self._networks) | {a for (a,) in c.execute("SELECT arch_id FROM networks")}
            new = {}
            for row in src.network_rows():
                if row["arch_id"] in have:
                    stats["kept"] += 1
                else:
                    new[row["arch_id"]] = row
            for arch_id, tflite in src.graphs(new):  # only the new ones decoded, one at a time
                self._insert_network(c, new[arch_id], tflite, runs)
                stats["networks"] += 1
            for row in src.label_rows():
                mine_label = mine_labels.get((row["arch_id"], row["target"]))
                if mine_label is not None and mine_label[0] >= row["created"]:
                    stats["older"] += mine_label[1:] != (row["status"], row["metrics"])
                    continue  # this folder's label is the same or newer (relabelled since the copy): it stays
                c.execute("INSERT OR REPLACE INTO labels (arch_id, target, status, reason, metrics, run_id, created)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (row["arch_id"], row["target"], row["status"], row["reason"],
                           json.dumps(row["metrics"], sort_keys=True) if row["metrics"] is not None else None,
                           runs.get(row["run_id"]), row["created"]))
                stats["labels"] += 1
        return stats

    @staticmethod
    def _insert_network(c: sqlite3.Connection, row: dict, tflite: bytes | None, runs: dict[int, int]) -> None:
        c.execute(
            "INSERT OR IGNORE INTO networks (arch_id, space, arch, seed, status, reason, tflite, tflite_sha256,"
            " tflite_bytes, export_s, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row["arch_id"], row["space"], json.dumps(row["arch"], sort_keys=True), int(row["seed"]), row["status"],
             row["reason"], compress(tflite) if tflite is not None else None, row["tflite_sha256"],
             row["tflite_bytes"], row["export_s"], runs.get(row["run_id"]), row["created"]))

    def seal_if_due(self, every: int = SEAL_EVERY) -> list[Path]:
        """Seals the working store once it holds ``every`` networks (a long build's finished parts)."""
        if self.conn is not None and self.working_networks() >= every:
            return self.seal()
        return []

    def working_networks(self) -> int:
        """Networks in the working store, not sealed yet."""
        return self._working("SELECT COUNT(*) FROM networks")[0][0] if self.conn is not None else 0

    def seal(self, shard_networks: int = SHARD_NETWORKS) -> list[Path]:
        """Moves the working store's rows into new shards and removes it; returns the new shards.

        Networks go to shards of one space each (at most ``shard_networks`` networks),
        with their labels and the runs those rows name; a label of a network sealed
        earlier goes with its space.  Rows the shards hold already (a seal interrupted
        after its shards were written) are not written twice.  Safe to kill at any
        point: the working store is removed only once every shard is in place.
        """
        if self._lock is None:
            self._writable()  # the read-only error
        if self.conn is None:
            return []  # nothing unsealed
        conn = self.conn
        runs = {r[0]: {"run_id": r[0], "started": r[1], "kind": r[2], "command": json.loads(r[3]),
                       "provenance": json.loads(r[4])}
                for r in conn.execute("SELECT run_id, started, kind, command, provenance FROM runs")}
        by_space: dict[str, list[tuple[dict, bytes | None]]] = {}
        order: list[str] = []
        for (arch_id, space, arch, seed, status, reason, blob, sha, nbytes, export_s, run_id,
             created) in conn.execute("SELECT arch_id, space, arch, seed, status, reason, NULL, tflite_sha256,"
                                      " tflite_bytes, export_s, run_id, created FROM networks ORDER BY rowid"):
            if arch_id in self._networks:
                continue
            if space not in by_space:
                by_space[space] = []
                order.append(space)
            by_space[space].append(({"arch_id": arch_id, "space": space, "arch": json.loads(arch), "seed": seed,
                                     "status": status, "reason": reason, "tflite_sha256": sha,
                                     "tflite_bytes": nbytes, "export_s": export_s, "run_id": run_id,
                                     "created": created}, None))
        space_of = {a: r["space"] for a, r in self._networks.items()}
        space_of.update((a, s) for a, s in conn.execute("SELECT arch_id, space FROM networks"))
        labels_by_space: dict[str, list[dict]] = {}
        for arch_id, target, status, reason, metrics, run_id, created in conn.execute(
                "SELECT arch_id, target, status, reason, metrics, run_id, created FROM labels ORDER BY rowid"):
            row = {"arch_id": arch_id, "target": target, "status": status, "reason": reason,
                   "metrics": json.loads(metrics) if metrics is not None else None, "run_id": run_id,
                   "created": created}
            if self._labels.get((arch_id, target)) == row:
                continue
            space = space_of.get(arch_id, "")
            labels_by_space.setdefault(space, []).append(row)
            if space not in by_space:
                by_space[space] = []
                order.append(space)
        seq = max([0, *(shard_seq(s.path) for s in self.shards), *(shard_seq(Path(p)) for p in self.bad_shards)])
        written: list[Path] = []
        unreferenced = set(runs)
        for n_space, space in enumerate(order):
            networks = by_space[space]
            chunks = [networks[i:i + shard_networks] for i in range(0, len(networks), shard_networks)] or [[]]
            chunk_of = {n["arch_id"]: k for k, chunk in enumerate(chunks) for n, _ in chunk}
            chunk_labels: list[list[dict]] = [[] for _ in chunks]
            for lab in labels_by_space.get(space, []):  # a label of an earlier shard's network: the last chunk
                chunk_labels[chunk_of.get(lab["arch_id"], len(chunks) - 1)].append(lab)
            for k, (chunk, mine) in enumerate(zip(chunks, chunk_labels)):
                if not chunk and not mine:
                    continue
                run_ids = {n["run_id"] for n, _ in chunk} | {lab["run_id"] for lab in mine}
                if n_space == len(order) - 1 and k == len(chunks) - 1:
                    run_ids |= unreferenced  # runs that stored nothing are kept too, with the last shard
                unreferenced -= run_ids
                shard_runs = [runs[r] for r in sorted(run_ids, key=lambda r: (r is None, r)) if r in runs]
                seq += 1
                path = self.directory / shard_name(seq, space)
                write_shard(path, shard_runs, [n for n, _ in chunk], mine, self._graphs(chunk))
                written.append(path)
        self.conn.close()
        self.conn = None
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
        self._load_shards()
        return written

    def _graphs(self, chunk: list[tuple[dict, None]]) -> Iterator[bytes | None]:
        """The working store's stored flatbuffers of ``chunk``, one at a time."""
        for network, _ in chunk:
            (blob,) = self.conn.execute("SELECT tflite FROM networks WHERE arch_id = ?",
                                        (network["arch_id"],)).fetchone()
            yield decompress(blob) if blob is not None else None

    # -- reads -------------------------------------------------------------------

    def _network_rows(self) -> list[dict]:
        """Every network (shards first, then the working store), without graphs."""
        rows = list(self._networks.values())
        for r in self._working("SELECT arch_id, space, arch, seed, status, reason, tflite_sha256, tflite_bytes,"
                               " export_s, run_id, created FROM networks ORDER BY rowid"):
            if r[0] in self._networks:
                continue
            rows.append({"arch_id": r[0], "space": r[1], "arch": json.loads(r[2]), "seed": r[3], "status": r[4],
                         "reason": r[5], "tflite_sha256": r[6], "tflite_bytes": r[7], "export_s": r[8],
                         "run_id": r[9], "created": r[10]})
        return rows

    def _label_rows(self) -> dict[tuple[str, str], dict]:
        labels = dict(self._labels)
        for r in self._working("SELECT arch_id, target, status, reason, metrics, run_id, created FROM labels"
                               " ORDER BY rowid"):
            labels[(r[0], r[1])] = {"arch_id": r[0], "target": r[1], "status": r[2], "reason": r[3],
                                    "metrics": json.loads(r[4]) if r[4] is not None else None, "run_id": r[5],
                                    "created": r[6]}
        return labels

    def _run_rows(self) -> dict[int, dict]:
        runs = dict(self._runs)
        for r in self._working("SELECT run_id, started, kind, command, provenance FROM runs ORDER BY run_id"):
            runs.setdefault(r[0], {"run_id": r[0], "started": r[1], "kind": r[2], "command": json.loads(r[3]),
                                   "provenance": json.loads(r[4])})
        return runs

    def network_rows(self, space: str | None = None, status: str | None = None) -> list[dict]:
        """Network rows (no graphs) in the order they were stored."""
        return [r for r in self._network_rows()
                if (space is None or r["space"] == space) and (status is None or r["status"] == status)]

    def label_rows(self, target: str | None = None, status: str | None = None) -> list[dict]:
        return [r for r in self._label_rows().values()
                if (target is None or r["target"] == target) and (status is None or r["status"] == status)]

    def run_rows(self) -> list[dict]:
        return [self._run_rows()[k] for k in sorted(self._run_rows())]

    def arch_ids(self, space: str | None = None) -> set[str]:
        return {r["arch_id"] for r in self.network_rows(space)}

    def count(self, space: str, status: str = "ok") -> int:
        """The space's networks (their int8 samples; other regimes are not more networks)."""
        return sum(REGIME_SEP not in r["arch_id"] for r in self.network_rows(space, status))

    def first(self, space: str, num: int) -> list[str]:
        """The arch_ids of the space's first ``num`` healthy networks, in the order they were stored."""
        return [r["arch_id"] for r in self.network_rows(space, "ok")
                if REGIME_SEP not in r["arch_id"]][:max(int(num), 0)]

    def labelled(self, target: str) -> set[str]:
        """arch_ids with a successful label of ``target``."""
        return {r["arch_id"] for r in self.label_rows(target, "ok")}

    def unlabelled(self, space: str | None, target: str,
                   stale: Callable[[dict], bool] | None = None) -> list[tuple[str, dict, int, str]]:
        """Healthy networks without a label row for ``target``: (arch_id, arch, seed, sha).

        With ``stale`` (a target's :meth:`~predictors.targets.Target.stale`), a successful
        label it calls stale counts as missing too: it is to be measured again.
        """
        have = {a for (a, t), row in self._label_rows().items() if t == target
                and not (stale is not None and row["status"] == "ok" and stale(row["metrics"] or {}))}
        return [(r["arch_id"], r["arch"], r["seed"], r["tflite_sha256"]) for r in self.network_rows(space, "ok")
                if r["arch_id"] not in have]

    def fingerprint(self) -> str:
        """Changes whenever a network or label is added or replaced (a shard or a working row)."""
        shards = ",".join(f"{s.path.name}:{s.size_bytes}" for s in self.shards)
        if self.conn is None:
            return shards
        n = self.conn.execute("SELECT COUNT(*), MAX(created) FROM networks").fetchone()
        l_ = self.conn.execute("SELECT COUNT(*), MAX(created) FROM labels").fetchone()
        return f"{shards}|{n[0]}-{n[1]}-{l_[0]}-{l_[1]}"

    def source_files(self) -> list[Path]:
        """The files the dataset is read from (shards, then the working store)."""
        return [s.path for s in self.shards] + ([self.path] if self.conn is not None else [])

    def _labels_by_network(self) -> dict[str, dict[str, dict]]:
        labels: dict[str, dict[str, dict]] = {}
        for (arch_id, target), row in self._label_rows().items():
            if row["status"] == "ok":
                labels.setdefault(arch_id, {})[target] = row["metrics"]
        return labels

    def plan(self, spaces: list[str] | None = None) -> list[tuple[int | None, int, dict[str, Any]]]:
        """Where each healthy network of :meth:`rows` is stored, in the same order.

        ``(shard index, position in the shard, row)``, shard index None (and position
        -1) for the working store; rows as :meth:`rows` gives them, without ``tflite``.
        """
        labels = self._labels_by_network()
        wanted = set(spaces) if spaces else None
        out: list[tuple[int | None, int, dict[str, Any]]] = []
        for arch_id, row in self._networks.items():
            if row["status"] == "ok" and (wanted is None or row["space"] in wanted):
                index, k = self._where[arch_id]
                out.append((index, k, _row(row, labels)))
        out.sort(key=lambda item: (item[0], item[1]))
        for r in self._working("SELECT arch_id, space, arch, seed FROM networks WHERE status = 'ok' ORDER BY rowid"):
            if r[0] in self._networks or (wanted is not None and r[1] not in wanted):
                continue
            out.append((None, -1, _row({"arch_id": r[0], "space": r[1], "arch": json.loads(r[2]), "seed": r[3]},
                                       labels)))
        return out

    def working_graph(self, arch_id: str) -> bytes | None:
        """The stored flatbuffer of a network in the working store."""
        row = self._working("SELECT tflite FROM networks WHERE arch_id = ?", (arch_id,))
        return decompress(row[0][0]) if row and row[0][0] is not None else None

    def graphs(self, arch_ids: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        """``(arch_id, stored flatbuffer)`` of these networks (None for a failed one), shard by shard:
        only they are decoded."""
        wanted = set(arch_ids)
        by_shard: dict[int, dict[int, str]] = {}
        for arch_id in wanted:
            where = self._where.get(arch_id)
            if where is None:
                yield arch_id, self.working_graph(arch_id)
            else:
                by_shard.setdefault(where[0], {})[where[1]] = arch_id
        for index in sorted(by_shard):
            for position, data in self.shards[index].graphs(by_shard[index]):
                yield by_shard[index][position], data

    def rows(self, spaces: list[str] | None = None, with_tflite: bool = True) -> Iterator[dict[str, Any]]:
        """Every healthy network with its successful labels, in the order they were stored.

        One row at a time: a stored TFLite file is a few MB once decompressed (FBNet's are
        2 MB), so a caller that keeps rows keeps those; ``with_tflite=False`` leaves them
        out (``"tflite"`` is None) for callers that need the architectures and labels.
        """
        plan = self.plan(spaces)
        if not with_tflite:
            yield from (row for _, _, row in plan)
            return
        start = 0
        while start < len(plan):
            index = plan[start][0]
            if index is None:
                row = plan[start][2]
                row["tflite"] = self.working_graph(row["arch_id"])
                yield row
                start += 1
                continue
            stop = start
            while stop < len(plan) and plan[stop][0] == index:
                stop += 1
            rows = {k: row for _, k, row in plan[start:stop]}
            for k, data in self.shards[index].graphs(rows):  # one shard decoded at a time
                rows[k]["tflite"] = data
                yield rows[k]
            start = stop

    def info(self) -> dict[str, Any]:
        """The summary behind ``hwnas dataset info``."""
        networks_rows = self._network_rows()
        space_of = {r["arch_id"]: r["space"] for r in networks_rows}
        networks: dict[str, int] = {}
        regimes: dict[str, dict[str, int]] = {}  # regime -> space -> healthy samples
        failures: dict[str, int] = {}
        for r in networks_rows:
            if r["status"] == "ok":
                regime = split_key(r["arch_id"])[1]
                per = regimes.setdefault(regime, {})
                per[r["space"]] = per.get(r["space"], 0) + 1
                if regime == DEFAULT_REGIME:
                    networks[r["space"]] = networks.get(r["space"], 0) + 1
            else:
                key = _reason_key(r["reason"])
                failures[key] = failures.get(key, 0) + 1
        networks = dict(sorted(networks.items()))
        by_space: dict[str, dict[str, int]] = {space: {} for space in networks}
        labels_by_regime: dict[str, dict[str, int]] = {}
        timings: dict[str, dict[str, int]] = {}  # target -> how its latency was timed -> labels
        hosts: dict[str, dict[str, dict[str, int]]] = {}  # target -> how -> the host that timed it -> labels
        for (arch_id, target), row in self._label_rows().items():
            if row["status"] == "ok":
                how = label_timing(target, row["metrics"])
                if how is not None:
                    per = timings.setdefault(target, {})
                    per[how] = per.get(how, 0) + 1
                    host = (row["metrics"] or {}).get("cpu_model", "unknown host")
                    per_host = hosts.setdefault(target, {}).setdefault(how, {})
                    per_host[host] = per_host.get(host, 0) + 1
                space = space_of.get(arch_id)
                regime = split_key(arch_id)[1]
                if space is not None and regime == DEFAULT_REGIME:
                    counts = by_space.setdefault(space, {})
                    counts[target] = counts.get(target, 0) + 1
                if space is not None:
                    counts = labels_by_regime.setdefault(regime, {})
                    counts[target] = counts.get(target, 0) + 1
            else:
                key = f"{target}: {_reason_key(row['reason'])}"
                failures[key] = failures.get(key, 0) + 1
        by_space = {s: dict(sorted(c.items())) for s, c in sorted(by_space.items())}
        versions: dict[str, Any] = {}
        machines = []
        runs = self.run_rows()
        for run in runs:
            p = run["provenance"]
            for k, v in p.get("versions", {}).items():
                versions.setdefault(k, [])
                if v not in versions[k]:
                    versions[k].append(v)
            if p.get("machine") and p["machine"] not in machines:
                machines.append(p["machine"])
        size = sum(s.size_bytes for s in self.shards)
        size += sum(f.stat().st_size for f in self.directory.glob(DB_NAME + "*"))
        info = {
            "samples": sum(sum(per.values()) for per in regimes.values()),
            "by_space": by_space,
            "networks_by_space": networks,
            # the other regimes' samples (int8 is by_space): regime -> space -> samples, and labels
            "regimes": {q: {"samples": dict(sorted(regimes[q].items())),
                            "labels": dict(sorted(labels_by_regime.get(q, {}).items()))}
                        for q in sorted(regimes) if q != DEFAULT_REGIME},
            "failures": failures,
            "timings": {t: dict(sorted(c.items())) for t, c in sorted(timings.items())},
            "stale_labels": _stale_labels(timings),
            "timing_hosts": {t: {how: dict(sorted(h.items())) for how, h in sorted(c.items())}
                             for t, c in sorted(hosts.items())},
            "versions": {k: v[0] if len(v) == 1 else v for k, v in versions.items()},
            "machines": machines,
            "runs": len(runs),
            "size_bytes": size,
            "shards": len(self.shards),
            "unsealed_networks": self.working_networks(),
        }
        if self.bad_shards:
            info["bad_shards"] = list(self.bad_shards)
        return info


def label_timing(target: str, metrics: dict | None) -> str | None:
    """How a label's latency was timed (cpu-litert's labels without ``timing`` are ``median``);
    None for a target that does not record it."""
    metrics = metrics or {}
    if "timing" in metrics or target == "cpu-litert":
        return metrics.get("timing", "median")
    return None


def _stale_labels(timings: dict[str, dict[str, int]]) -> dict[str, int]:
    """Per target, the labels timed another way than the target times now (see ``Target.stale``)."""
    from predictors import targets as registry

    out = {}
    for target, counts in timings.items():
        try:
            out[target] = sum(n for how, n in counts.items() if registry.get(target).stale({"timing": how}))
        except HwnasError:  # a target this hwnas does not have
            continue
    return out


def _row(network: dict, labels: dict[str, dict[str, dict]]) -> dict[str, Any]:
    return {"arch_id": network["arch_id"], "space": network["space"], "arch": network["arch"],
            "seed": network["seed"], "quantize": split_key(network["arch_id"])[1], "tflite": None,
            "labels": labels.get(network["arch_id"], {})}


def _reason_key(reason: str | None) -> str:
    """Groups failure messages by their kind (the text before the first colon)."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()[:80]
