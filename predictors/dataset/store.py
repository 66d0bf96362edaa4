"""Dataset storage: one SQLite database per dataset directory, in WAL mode.

Why SQLite: every finished sample is one small transaction, so a build killed at
any moment (even ``kill -9``) leaves a consistent file that loses only the samples
in flight; the primary key on ``arch_id`` makes duplicates impossible; a reader
(``hwnas dataset info``, training) can open the file while a build writes to it; it
ships with Python.  One writer (the builder's parent process) does all writes, so
workers never contend for the lock.

Tables:
- ``networks``: one row per distinct architecture: space, arch (JSON), arch_id,
  weight seed, status (``ok``/``failed``) and failure reason, the TFLite graph
  compacted (constant payload zeroed, see ``strip_constant_buffers``) and
  zstd-compressed, and the SHA-256 of the original file (exporting the same arch
  and seed again reproduces it; the builder checks this before it labels later).
- ``labels``: one row per (arch_id, target): metrics (JSON) or failure reason.
- ``runs``: provenance of every build/import: command, package versions (hwnas,
  Vela, TensorFlow, LiteRT), target settings, machine.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from search_spaces.errors import HwnasError

DB_NAME = "dataset.sqlite"
SCHEMA_VERSION = 1

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


def compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(data)


def decompress(blob: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(blob)


class DatasetStore:
    """A dataset directory (``DIR/dataset.sqlite`` plus caches under ``DIR/processed``)."""

    def __init__(self, directory: str | os.PathLike, create: bool = False):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        if not self.path.exists():
            if not create:
                raise HwnasError(f"{self.directory}: no dataset here (expected {DB_NAME}); "
                                 "build one with `hwnas dataset build`")
            if self.directory.exists() and not self.directory.is_dir():
                raise HwnasError(f"{self.directory}: exists and is not a directory")
            self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise HwnasError(f"{self.path}: not a readable dataset database ({exc})") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "DatasetStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writes ------------------------------------------------------------------

    def start_run(self, kind: str, command: dict[str, Any], provenance: dict[str, Any]) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (started, kind, command, provenance) VALUES (?, ?, ?, ?)",
                (time.time(), kind, json.dumps(command, sort_keys=True), json.dumps(provenance, sort_keys=True)),
            )
            return int(cur.lastrowid)

    def add_network(self, *, arch_id: str, space: str, arch: dict, seed: int, status: str,
                    reason: str | None = None, tflite: bytes | None = None, tflite_sha256: str | None = None,
                    tflite_bytes: int | None = None, export_s: float | None = None, run_id: int | None = None,
                    labels: dict[str, dict] | None = None) -> None:
        """Records one network and its labels in one transaction (all or nothing)."""
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

    # -- reads -------------------------------------------------------------------

    def arch_ids(self, space: str | None = None) -> set[str]:
        if space is None:
            rows = self.conn.execute("SELECT arch_id FROM networks")
        else:
            rows = self.conn.execute("SELECT arch_id FROM networks WHERE space = ?", (space,))
        return {r[0] for r in rows}

    def count(self, space: str, status: str = "ok") -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM networks WHERE space = ? AND status = ?", (space, status)
        ).fetchone()[0]

    def unlabelled(self, space: str | None, target: str) -> list[tuple[str, dict, int, str]]:
        """Healthy networks without a label row for ``target``: (arch_id, arch, seed, sha)."""
        query = ("SELECT n.arch_id, n.arch, n.seed, n.tflite_sha256 FROM networks n WHERE n.status = 'ok'"
                 " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.arch_id = n.arch_id AND l.target = ?)")
        args: tuple = (target,)
        if space is not None:
            query += " AND n.space = ?"
            args += (space,)
        return [(r[0], json.loads(r[1]), r[2], r[3]) for r in self.conn.execute(query + " ORDER BY n.rowid", args)]

    def fingerprint(self) -> str:
        """Changes whenever a network or label is added or replaced."""
        n = self.conn.execute("SELECT COUNT(*), MAX(created) FROM networks").fetchone()
        l_ = self.conn.execute("SELECT COUNT(*), MAX(created) FROM labels").fetchone()
        return f"{n[0]}-{n[1]}-{l_[0]}-{l_[1]}"

    def rows(self, spaces: list[str] | None = None, with_tflite: bool = True) -> Iterator[dict[str, Any]]:
        """Every healthy network with its successful labels, in insertion order.

        One row at a time: a stored TFLite file is a few MB once decompressed (FBNet's are
        2 MB), so a caller that keeps rows keeps those; ``with_tflite=False`` leaves them
        out (``"tflite"`` is None) for callers that need the architectures and labels.
        """
        blob_column = "tflite" if with_tflite else "NULL"
        query = f"SELECT arch_id, space, arch, seed, {blob_column} FROM networks WHERE status = 'ok'"
        args: tuple = ()
        if spaces:
            query += f" AND space IN ({','.join('?' * len(spaces))})"
            args = tuple(spaces)
        labels: dict[str, dict[str, dict]] = {}
        for arch_id, target, metrics in self.conn.execute(
            "SELECT arch_id, target, metrics FROM labels WHERE status = 'ok'"
        ):
            labels.setdefault(arch_id, {})[target] = json.loads(metrics)
        for arch_id, space, arch, seed, blob in self.conn.execute(query + " ORDER BY rowid", args):
            yield {
                "arch_id": arch_id,
                "space": space,
                "arch": json.loads(arch),
                "seed": seed,
                "tflite": decompress(blob) if blob is not None else None,
                "labels": labels.get(arch_id, {}),
            }

    def info(self) -> dict[str, Any]:
        """The summary behind ``hwnas dataset info``."""
        samples = self.conn.execute("SELECT COUNT(*) FROM networks WHERE status = 'ok'").fetchone()[0]
        networks: dict[str, int] = {}
        for space, n in self.conn.execute(
            "SELECT space, COUNT(*) FROM networks WHERE status = 'ok' GROUP BY space ORDER BY space"
        ):
            networks[space] = n
        by_space: dict[str, dict[str, int]] = {space: {} for space in networks}
        for space, target, n in self.conn.execute(
            "SELECT n.space, l.target, COUNT(*) FROM labels l JOIN networks n USING (arch_id)"
            " WHERE l.status = 'ok' GROUP BY n.space, l.target ORDER BY n.space, l.target"
        ):
            by_space.setdefault(space, {})[target] = n
        failures: dict[str, int] = {}
        for reason, n in self.conn.execute(
            "SELECT reason, COUNT(*) FROM networks WHERE status = 'failed' GROUP BY reason"
        ):
            key = _reason_key(reason)
            failures[key] = failures.get(key, 0) + n
        for target, reason, n in self.conn.execute(
            "SELECT target, reason, COUNT(*) FROM labels WHERE status = 'failed' GROUP BY target, reason"
        ):
            key = f"{target}: {_reason_key(reason)}"
            failures[key] = failures.get(key, 0) + n
        versions: dict[str, Any] = {}
        machines = []
        for (prov,) in self.conn.execute("SELECT provenance FROM runs ORDER BY run_id"):
            p = json.loads(prov)
            for k, v in p.get("versions", {}).items():
                versions.setdefault(k, [])
                if v not in versions[k]:
                    versions[k].append(v)
            if p.get("machine") and p["machine"] not in machines:
                machines.append(p["machine"])
        size = sum(f.stat().st_size for f in self.directory.glob(DB_NAME + "*"))
        return {
            "samples": samples,
            "by_space": by_space,
            "networks_by_space": networks,
            "failures": failures,
            "versions": {k: v[0] if len(v) == 1 else v for k, v in versions.items()},
            "machines": machines,
            "runs": self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
            "size_bytes": size,
        }


def _reason_key(reason: str | None) -> str:
    """Groups failure messages by their kind (the text before the first colon)."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()[:80]
