"""SQLite's vector index: the int8 codes of every stored vector, in a memory-mapped file per model.

SQLite: a ``VectorIndex`` file per model beside the database (``<db folder>/vectors/``), derived
from the table and rebuildable at any time (``dailypapers reindex``): every vector quantized to
int8 (one global scale), memory-mapped, so several web workers share one copy in the page cache.
A search scans all the int8 codes exactly (a SIMD int8 dot-product kernel from ``numkong``), keeps
the best candidates, and re-ranks them by the exact float32 vectors it reads back from the table in
the same query that applies the filters, so stale or deleted entries of the file cannot surface.
Filters: the candidates are checked in rounds of 8x more (post-filtering) and only a filter that
passes too few of ~25k candidates makes the search ask SQL for every allowed pk (pre-filtering).

Measured against float, float16 and int8 scans (numpy, faiss, usearch) and approximate indexes
(HNSW, IVF) at 100k and 1M vectors: docs/benchmarks.md, "Vector search alone".

The int8 exact scan meets the target with no approximate structure: it builds in one sequential
pass at the speed of reading the table, needs no tuning, handles any filter by masking, and new
rows are simply scored beside it. An HNSW graph would be 100x faster per query but costs minutes of
2-core CPU to build at 1M, and incremental upkeep; not needed at this scale. Top-k selection uses
a sampled threshold (0.6 ms instead of argpartition's 13 ms over 1M scores; scored.py).

Staleness: each row has a ``seq``, larger than that of every row committed before it. The file
records the largest ``seq`` it covers; every search reads the rows above it (an index probe that
finds nothing in the common case) and scores them exactly beside the file: a search only reads.
Writing the file is upkeep's work (``keep_up``, from ``search.backends.upkeep`` after every write):
when the file is missing or more than ``REBUILD_AFTER`` rows are newer than it, it is rebuilt (one
process at a time, by a lock file); ``dailypapers embed`` rebuilds it when it finishes. The file is
written to a temporary name and renamed over the old one; other processes notice the new file by
its inode and reload it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection, Engine

from dailypapers.search.scored import Scored
from dailypapers.store.db import database_file
from dailypapers.store.schema import EMBEDDING_DIM, paper_embeddings

try:  # the int8 kernel; without it the scan falls back to numpy (correct, several times slower)
    import numkong as _nk
except ImportError:  # pragma: no cover - numkong is a dependency
    _nk = None

REBUILD_AFTER = 50_000  # rows newer than the index file above which upkeep rebuilds the file

_emb = paper_embeddings
# Every search asks for the rows written since the file (built once: a search runs them as they are).
_IS_NEWER = (_emb.c.seq > bindparam("seq"), _emb.c.model == bindparam("model"))
_NEWER = select(_emb.c.seq, _emb.c.paper_pk, _emb.c.vector).where(*_IS_NEWER).order_by(_emb.c.seq)


def _too_many_newer(conn: Connection, seq: int, model: str) -> bool:
    newer = select(_emb.c.seq).where(*_IS_NEWER).limit(REBUILD_AFTER + 1).subquery()
    return conn.execute(select(func.count()).select_from(newer), {"seq": seq, "model": model}).scalar_one() \
        > REBUILD_AFTER


def to_blob(vector: np.ndarray) -> bytes:
    """SQLite's form of a vector: little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def as_array(value) -> np.ndarray:  # noqa: ANN001
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, dtype="<f4")
    return np.asarray(value, dtype=np.float32)


def current_model(conn: Connection) -> str | None:
    """The model of the most recently written embedding (None when there is none)."""
    return conn.execute(select(_emb.c.model).order_by(_emb.c.seq.desc()).limit(1)).scalar()


_MAGIC = b"DPVEC1\n"
_HEADER_BYTES = 4096
_FORMAT = 1


def index_dir(engine: Engine) -> Path | None:
    """Where a SQLite database's vector index files live: ``vectors/`` beside the database file."""
    path = database_file(engine)
    return path.parent / "vectors" if path else None


def _index_path(engine: Engine, directory: Path, model: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    stem = Path(engine.url.database or "memory").stem
    return Path(directory) / f"{stem}.{slug}.dpvec"


@dataclass
class _Tail:
    """Rows newer than the file, scored exactly in float32."""

    seq: int
    pks: np.ndarray
    vectors: np.ndarray


def _quantize(vectors: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(vectors * scale), -127, 127).astype(np.int8)


class VectorIndex:
    """The int8 codes of every stored vector of one model, memory-mapped from one file.

    File: a 4 KiB header (magic line, then JSON: model, dim, count, seq covered, scale), the codes
    (count x dim int8, rows in paper-pk order), then the paper pks (count int64).
    """

    def __init__(self, engine: Engine, path: Path, model: str):
        self.engine = engine
        self.path = Path(path)
        self.model = model
        self._lock = threading.RLock()
        self._identity: tuple | None = None
        self.header: dict = {}
        self.codes = np.zeros((0, EMBEDDING_DIM), np.int8)
        self.pks = np.zeros(0, np.int64)
        self._tail = _Tail(0, np.zeros(0, np.int64), np.zeros((0, EMBEDDING_DIM), np.float32))

    # building and loading

    @classmethod
    def build(cls, engine: Engine, path: Path, model: str, *, chunk: int = 20_000) -> VectorIndex:
        """Write the file from the table (to a temporary name, then renamed over the old one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        started = time.perf_counter()
        pks: list[np.ndarray] = []
        count, scale, dim = 0, None, None
        try:
            with engine.connect() as conn, tmp.open("wb") as out:
                # Read the covered seq first: every row at or below it is committed, so the scan
                # below sees it; rows above it are the search's tail.
                seq = conn.execute(select(func.coalesce(func.max(_emb.c.seq), 0))).scalar_one()
                out.write(b"\0" * _HEADER_BYTES)
                result = conn.execution_options(yield_per=chunk).execute(
                    select(_emb.c.paper_pk, _emb.c.vector).where(_emb.c.model == model)
                    .order_by(_emb.c.paper_pk))
                for part in result.partitions():
                    block = np.frombuffer(b"".join(vec for _, vec in part), dtype="<f4")
                    dim = dim or len(part[0][1]) // 4
                    block = block.reshape(len(part), dim)
                    if scale is None:  # one global scale, from the first rows (outliers clipped)
                        scale = 127.0 / max(float(np.quantile(np.abs(block), 0.9999)), 1e-6)
                    out.write(_quantize(block, scale).tobytes())
                    pks.append(np.fromiter((pk for pk, _ in part), np.int64, len(part)))
                    count += len(part)
                all_pks = np.concatenate(pks) if pks else np.zeros(0, np.int64)
                codes_offset = _HEADER_BYTES
                pks_offset = codes_offset + count * (dim or EMBEDDING_DIM)
                pks_offset += -pks_offset % 8
                out.seek(pks_offset)
                out.write(all_pks.astype("<i8").tobytes())
                header = {"format": _FORMAT, "model": model, "dim": dim or EMBEDDING_DIM, "count": count,
                          "seq": int(seq), "scale": scale or 1.0, "codes_offset": codes_offset,
                          "pks_offset": pks_offset, "built_at": time.time(),
                          "build_seconds": round(time.perf_counter() - started, 3)}
                blob = _MAGIC + json.dumps(header).encode()
                assert len(blob) < _HEADER_BYTES
                out.seek(0)
                out.write(blob)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        index = cls(engine, path, model)
        index.load()
        return index

    def load(self) -> None:
        """Map the file as it is on disk now (the file must exist)."""
        with self.path.open("rb") as f:  # header and arrays from this one file, even if renamed over now
            stat = os.fstat(f.fileno())
            head = f.read(_HEADER_BYTES)
            if not head.startswith(_MAGIC):
                raise ValueError(f"{self.path}: not a vector index file")
            header = json.loads(head[len(_MAGIC):].rstrip(b"\0"))
            if header.get("format") != _FORMAT or header.get("model") != self.model:
                raise ValueError(f"{self.path}: an index of another format or model")
            n, dim = header["count"], header["dim"]
            if n:
                codes = np.memmap(f, dtype=np.int8, mode="r", offset=header["codes_offset"], shape=(n, dim))
                pks = np.memmap(f, dtype="<i8", mode="r", offset=header["pks_offset"], shape=(n,))
            else:
                codes, pks = np.zeros((0, dim), np.int8), np.zeros(0, np.int64)
        with self._lock:
            self.header, self.codes, self.pks = header, codes, pks
            self._identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            self._tail = _Tail(header["seq"], np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    @property
    def seq(self) -> int:
        return self.header.get("seq", 0)

    def __len__(self) -> int:
        return len(self.pks)

    # keeping up

    def _reload_if_replaced(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        if (stat.st_ino, stat.st_mtime_ns, stat.st_size) != self._identity:
            try:
                self.load()
            except (ValueError, OSError):
                pass  # half-visible or foreign: keep what we have; the tail keeps results complete

    def refresh(self, conn: Connection) -> None:
        """Reload the file if another process replaced it; read the rows written since it was built.

        Only reads: a file far behind (or missing) makes a longer tail until upkeep rewrites it.
        """
        self._reload_if_replaced()
        tail = self._tail
        rows = conn.execute(_NEWER, {"seq": tail.seq, "model": self.model}).all()
        if not rows:
            return
        with self._lock:
            if self._tail is not tail:  # another thread got there first
                return
            vectors = np.stack([as_array(vec) for _, _, vec in rows]).astype(np.float32)
            new_pks = np.array([r[1] for r in rows], np.int64)
            self._tail = _Tail(rows[-1][0], np.concatenate([tail.pks, new_pks]),
                               np.concatenate([tail.vectors, vectors]))

    def keep_up(self, *, fresh: bool = False) -> VectorIndex:
        """Upkeep: rewrite the file when it is missing, unreadable or more than ``REBUILD_AFTER`` rows
        behind the table (``fresh``: always), one process at a time; the others wait and load it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(self.path.with_name(f".{self.path.name}.lock")):
            self._reload_if_replaced()
            if not fresh and self._identity is not None:
                with self.engine.connect() as conn:
                    if not _too_many_newer(conn, self.seq, self.model):
                        return self  # recent enough (maybe just written by another process)
            VectorIndex.build(self.engine, self.path, self.model)
            self.load()
        return self

    # scoring

    def _scores(self, q8: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        return self._score_rows(q8[None, :], rows)[0]

    def _score_rows(self, q8s: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Each int8 query's dot product with every code (of ``rows`` when given): queries x codes."""
        codes = self.codes if rows is None else self.codes[rows]
        if len(codes) == 0:
            return np.zeros((len(q8s), 0), np.float32)
        if _nk is not None:
            out = np.empty((len(q8s), len(codes)), np.float32)
            _nk.cdist(q8s, codes, metric="dot", out=out)
            return out
        return q8s.astype(np.float32) @ codes.astype(np.float32).T  # pragma: no cover

    def score_many(self, queries: np.ndarray) -> list[Scored]:
        """``score`` for each row of ``queries``, in one pass over the codes (no filter)."""
        with self._lock:
            codes_pks, tail, scale = self.pks, self._tail, self.header.get("scale", 1.0)
        file_scores = self._score_rows(_quantize(queries, scale), None)
        tail_scores = tail.vectors @ queries.T if len(tail.pks) else None
        out = []
        for i, scores in enumerate(file_scores):
            parts, factors = [(codes_pks, scores)], [1.0 / (scale * scale)]
            if tail_scores is not None:
                parts.append((tail.pks, tail_scores[:, i]))
                factors.append(1.0)
            out.append(Scored(parts, factors))
        return out

    def score(self, q: np.ndarray, allowed: np.ndarray | None = None) -> Scored:
        """Every row's int8 score (only ``allowed`` pks, sorted, when given), and the tail's exact one."""
        with self._lock:
            codes_pks, tail, scale = self.pks, self._tail, self.header.get("scale", 1.0)
        q8 = _quantize(q, scale)
        if allowed is None:
            file_part = (codes_pks, self._scores(q8, None))
        else:  # sorted pks -> the rows holding them
            rows = np.zeros(0, np.int64)
            if len(codes_pks) and len(allowed):
                positions = np.minimum(np.searchsorted(codes_pks, allowed), len(codes_pks) - 1)
                rows = positions[np.asarray(codes_pks[positions]) == allowed]
            if len(rows) > len(codes_pks) // 4:  # most rows: scan them all, then mask the rest
                scores = self._scores(q8, None)
                keep = np.zeros(len(scores), bool)
                keep[rows] = True
                scores[~keep] = -np.inf
                file_part = (codes_pks, scores)
            else:
                file_part = (np.asarray(codes_pks[rows]), self._scores(q8, rows))
        parts, factors = [file_part], [1.0 / (scale * scale)]
        if len(tail.pks):
            tail_scores = tail.vectors @ q
            if allowed is not None:
                tail_scores = np.where(np.isin(tail.pks, allowed), tail_scores, -np.inf)
            parts.append((tail.pks, tail_scores))
            factors.append(1.0)
        return Scored(parts, factors)


_open: dict[tuple[str, str], VectorIndex] = {}
_open_lock = threading.Lock()


def rebuild_index(engine: Engine, directory: Path | None = None, model: str | None = None) -> VectorIndex:
    """Rebuild the SQLite vector index of ``model`` (default: the model written last) from the table."""
    if model is None:
        with engine.connect() as conn:
            model = current_model(conn)
        if model is None:
            raise ValueError("there are no embeddings to index (run `dailypapers embed` first)")
    directory = directory or index_dir(engine)
    if directory is None:
        raise ValueError("only a SQLite database file has a place for an index file beside it; "
                         "pass a directory")
    index = VectorIndex.build(engine, _index_path(engine, directory, model), model)
    with _open_lock:
        _open[(str(index.path), model)] = index
    return index


def open_index(engine: Engine, directory: Path | None = None, model: str | None = None, *,
               build: bool = True) -> VectorIndex:
    """The index of ``model`` in this process (loaded once, reloaded when replaced).

    ``build``: write the file first when it is missing or unreadable. Searches pass False: they
    only read, and score the table's rows in place of a missing file.
    """
    if model is None:
        with engine.connect() as conn:
            model = current_model(conn)
    directory = directory or index_dir(engine)
    if directory is None:  # in-memory database: a private temporary file
        import tempfile

        directory = Path(tempfile.gettempdir()) / f"dailypapers-vectors-{os.getpid()}-{id(engine)}"
    path = _index_path(engine, directory, model or "none")
    key = (str(path), model or "none")
    with _open_lock:
        index = _open.get(key)
        if index is None:
            index = _open[key] = VectorIndex(engine, path, model or "none")
            try:
                index.load()
            except (OSError, ValueError):
                pass  # missing or unreadable: empty, its tail holds every row
    index.engine = engine
    if build and index._identity is None:
        index.keep_up()
    return index
