"""Sealed dataset shards: append-only, compact, checksummed files of networks and labels.

A dataset directory is a folder of shards (``shard-00001-<space>-<id>.hwds``) plus at
most one working SQLite file that a running build writes (see ``store.py``).  A
shard is written once, under a temporary name, fsynced and renamed into place; no
later build ever opens one for writing, so a committed shard's bytes never change.

Layout (little-endian)::

    b"HWNASDS1"                          magic and format version
    u32 n, n bytes                       header: JSON {"format", "sections": [[name, bytes, raw_bytes]], ...}
    sections, back to back               each one zstd frame
    32 bytes                             SHA-256 of everything before it
    b"HWDS-END"

Sections: ``runs``, ``networks`` and ``labels`` (JSON, column per field) and the
graphs: the concatenated :mod:`compact` encodings of the networks' stored
flatbuffers, one stream per field (``residuals``, ``lengths``, ``word_gaps``, ...;
one zstd frame each over the whole shard, so the structure networks share is stored
once), and ``raw`` for files that do not round-trip through the compaction.  Every field of the working store's rows is kept, so sealing
is lossless: a row read back from a shard equals the row that was written.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from search_spaces.errors import HwnasError

MAGIC = b"HWNASDS1"
END = b"HWDS-END"
SUFFIX = ".hwds"
FORMAT = 1
NETWORK_FIELDS = ("arch_id", "space", "arch", "seed", "status", "reason", "tflite_sha256", "tflite_bytes",
                  "export_s", "run_id", "created")
LABEL_FIELDS = ("arch_id", "target", "status", "reason", "metrics", "run_id", "created")
RUN_FIELDS = ("run_id", "started", "kind", "command", "provenance")
# the graphs' streams: the compacted flatbuffers (see compact.Compact), and files kept whole
GRAPH_STREAMS = ("residuals", "lengths", "word_gaps", "word_signed", "vector_gaps", "vector_widths", "raw")
_LEVEL = 19
_WINDOW_LOG = 24  # 16 MB: networks of one space repeat each other's structure within a few files


class ShardError(HwnasError):
    """A shard that cannot be read: truncated, corrupt, or of an unknown format."""


def _compressor():
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(_LEVEL, window_log=_WINDOW_LOG, write_checksum=1,
                                                            write_content_size=1)
    return zstandard.ZstdCompressor(compression_params=params)


def shard_name(seq: int, space: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in space)[:40] or "labels"
    return f"shard-{seq:05d}-{safe}-{secrets.token_hex(4)}{SUFFIX}"


def shard_seq(path: Path) -> int:
    try:
        return int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return 0


def list_shards(directory: Path) -> list[Path]:
    """The folder's shards in the order they were written (sequence number, then name)."""
    return sorted((p for p in directory.glob(f"shard-*{SUFFIX}") if p.is_file()),
                  key=lambda p: (shard_seq(p), p.name))


def write_shard(path: Path, runs: list[dict], networks: list[dict], labels: list[dict],
                graphs: Iterable[bytes | None]) -> int:
    """Writes one shard atomically; ``graphs`` are the networks' stored flatbuffers, in order.

    Returns the shard's size in bytes.
    """
    from predictors.dataset.compact import encode

    streams = {name: bytearray() for name in GRAPH_STREAMS}
    graph_kind, graph_sizes = [], []
    for data in graphs:
        if data is None:
            graph_kind.append(None)
            graph_sizes.append(None)
            continue
        c = encode(data)
        if c is None:
            graph_kind.append("raw")
            graph_sizes.append(len(data))
            streams["raw"] += data
            continue
        graph_kind.append("compact")
        graph_sizes.append([len(c.residual), len(c.lengths), len(c.words), len(c.vectors)])
        streams["residuals"] += c.residual
        streams["lengths"] += c.lengths.astype("<u4").tobytes()
        streams["word_gaps"] += np.diff(c.words, prepend=0).astype("<u4").tobytes()
        streams["word_signed"] += c.signed.astype(np.uint8).tobytes()
        streams["vector_gaps"] += np.diff(c.vectors, prepend=0).astype("<u4").tobytes()
        streams["vector_widths"] += c.widths.astype(np.uint8).tobytes()
    if len(graph_kind) != len(networks):
        raise ValueError("one graph (or None) per network")
    columns = {f: [n.get(f) for n in networks] for f in NETWORK_FIELDS}
    columns["graph"] = graph_kind
    columns["graph_sizes"] = graph_sizes
    sections = {
        "runs": _json({f: [r.get(f) for r in runs] for f in RUN_FIELDS}),
        "networks": _json(columns),
        "labels": _json({f: [lab.get(f) for lab in labels] for f in LABEL_FIELDS}),
        **{name: bytes(data) for name, data in streams.items()},
    }
    comp = _compressor()
    frames = {name: comp.compress(data) for name, data in sections.items()}
    header = {
        "format": FORMAT,
        "sections": [[name, len(frames[name]), len(sections[name])] for name in sections],
        "networks": len(networks),
        "labels": len(labels),
        "spaces": sorted({n["space"] for n in networks}),
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + len(head).to_bytes(4, "little") + head + b"".join(frames[name] for name in sections)
    blob = body + hashlib.sha256(body).digest() + END
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return len(blob)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Shard:
    """One sealed shard, checked on opening (magic, length, SHA-256); sections read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise ShardError(f"{self.path}: cannot read dataset shard ({exc.strerror})") from None
        if len(blob) < len(MAGIC) + 4 + 32 + len(END) or not blob.startswith(MAGIC):
            kind = "truncated" if MAGIC.startswith(blob[:len(MAGIC)]) else "not a dataset shard"
            raise ShardError(self._broken(kind))
        if not blob.endswith(END):
            raise ShardError(self._broken("truncated (no end marker)"))
        body, digest = blob[:-32 - len(END)], blob[-32 - len(END):-len(END)]
        if hashlib.sha256(body).digest() != digest:
            raise ShardError(self._broken("corrupt (checksum mismatch)"))
        n = int.from_bytes(body[8:12], "little")
        try:
            self.header = json.loads(body[12:12 + n])
        except ValueError:
            raise ShardError(self._broken("corrupt header")) from None
        if self.header.get("format") != FORMAT:
            raise ShardError(f"{self.path}: dataset shard format {self.header.get('format')} is not "
                             f"{FORMAT}; upgrade hwnas to read it")
        self._frames: dict[str, tuple[bytes, int]] = {}
        at = 12 + n
        for name, size, raw_size in self.header["sections"]:
            self._frames[name] = (body[at:at + size], raw_size)
            at += size
        if at != len(body):
            raise ShardError(self._broken("corrupt section table"))
        self._cache: dict[str, Any] = {}

    def _broken(self, why: str) -> str:
        return (f"{self.path}: dataset shard {why}; move it out of the folder to read the other shards, "
                "or pass --skip-bad-shards (HWNAS_SKIP_BAD_SHARDS=1)")

    @property
    def spaces(self) -> list[str]:
        return list(self.header.get("spaces", []))

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def section(self, name: str) -> bytes:
        import zstandard

        frame, raw_size = self._frames[name]
        try:
            return zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(raw_size, 1))
        except zstandard.ZstdError as exc:
            raise ShardError(self._broken(f"corrupt section {name!r} ({exc})")) from None

    def _columns(self, name: str) -> dict[str, list]:
        if name not in self._cache:
            self._cache[name] = json.loads(self.section(name))
        return self._cache[name]

    def runs(self) -> list[dict]:
        return _rows(self._columns("runs"), RUN_FIELDS)

    def networks(self) -> list[dict]:
        """The networks' rows (without their graphs), in the order they were stored."""
        return _rows(self._columns("networks"), NETWORK_FIELDS)

    def labels(self) -> list[dict]:
        return _rows(self._columns("labels"), LABEL_FIELDS)

    def graphs(self, positions: Iterable[int] | None = None) -> Iterator[tuple[int, bytes | None]]:
        """``(position, stored flatbuffer)`` of each network (None for failed ones), in order.

        ``positions`` selects networks by their position in the shard (default: all);
        the others are skipped without decoding.
        """
        from predictors.dataset.compact import Compact, decode

        cols = self._columns("networks")
        kinds, sizes = cols["graph"], cols["graph_sizes"]
        wanted = range(len(kinds)) if positions is None else sorted(set(positions))
        if not wanted:
            return
        data = {name: self.section(name) for name in GRAPH_STREAMS}
        u32 = {name: np.frombuffer(data[name], dtype="<u4") for name in ("lengths", "word_gaps", "vector_gaps")}
        u8 = {name: np.frombuffer(data[name], dtype=np.uint8) for name in ("word_signed", "vector_widths")}
        at = dict.fromkeys(("residuals", "lengths", "words", "vectors", "raw"), 0)
        i = 0
        for want in wanted:
            for i in range(i, want):  # skip to the next wanted network
                _advance(at, kinds[i], sizes[i])
            i = want + 1
            kind, size = kinds[want], sizes[want]
            if kind is None:
                yield want, None
            elif kind == "raw":
                yield want, data["raw"][at["raw"]:at["raw"] + size]
            else:
                r, n, w, v = at["residuals"], at["lengths"], at["words"], at["vectors"]
                n_res, n_len, n_words, n_vec = size
                try:
                    c = Compact(residual=data["residuals"][r:r + n_res], lengths=u32["lengths"][n:n + n_len],
                                words=np.cumsum(u32["word_gaps"][w:w + n_words], dtype=np.int64),
                                signed=u8["word_signed"][w:w + n_words],
                                vectors=np.cumsum(u32["vector_gaps"][v:v + n_vec], dtype=np.int64),
                                widths=u8["vector_widths"][v:v + n_vec])
                    yield want, decode(c)
                except (HwnasError, ValueError, IndexError) as exc:
                    raise ShardError(self._broken(f"corrupt graph ({exc})")) from None
            _advance(at, kind, size)


def _advance(at: dict[str, int], kind: str | None, size) -> None:
    if kind == "raw":
        at["raw"] += size
    elif kind is not None:
        at["residuals"] += size[0]
        at["lengths"] += size[1]
        at["words"] += size[2]
        at["vectors"] += size[3]


def _rows(columns: dict[str, list], fields: tuple[str, ...]) -> list[dict]:
    n = len(columns[fields[0]]) if fields[0] in columns else 0
    return [{f: columns[f][i] for f in fields} for i in range(n)]
