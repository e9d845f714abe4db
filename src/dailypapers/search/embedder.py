"""Sentence embeddings for semantic search: one model, two runtimes.

* ``TorchEmbedder`` runs the model with plain sentence-transformers (any device torch has, e.g. a GPU).
* ``OnnxEmbedder`` runs an int8 ONNX copy of the same local model files with ONNX Runtime and the fast
  tokenizer alone (no torch at query time). The copy is exported and quantized once into a cache folder;
  the float32 export is kept beside it and serves small calls (search queries) exactly.

Both give float32, L2-normalized rows in input order; on CPU the ONNX path is ~2-3x faster for a cosine
of >= 0.99 with the torch vectors (bench/embed.py measures both).

The model files and their one-time ONNX export: model_files.py.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from dailypapers.search.model_files import (
    default_cache_dir,
    export_onnx,
    folder_name,
    model_fingerprint,
    model_spec,
    no_progress_bars,
    offline,
    resolve_model,
)

log = logging.getLogger(__name__)

RUNTIMES = ("onnx", "torch")
# Tokens per ONNX Runtime call (sub-batch): small calls stay in cache. Texts/s per CPU measured for 256,
# 512, 1024, 2048, 4096 tokens: 67, 67, 64, 60, 55 (batch 32 of abstracts is 8192 tokens).
DEFAULT_BATCH_TOKENS = 512
# Calls of at most this many tokens in all run the float32 graph (exact; 3-8 ms for a query, ~60 ms for
# a 256-token abstract, on one core).
DEFAULT_EXACT_TOKENS = 512


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; rows come back in the order of the texts."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float32 array (len(texts), dim) of L2-normalized rows, in input order."""
        ...


def paper_text(title: str, summary: str) -> str:
    """The text embedded for a paper: "Title. Abstract" (the model sees at most 256 tokens of it)."""
    title = " ".join((title or "").split())
    summary = " ".join((summary or "").split())
    if not summary:
        return title
    if not title:
        return summary
    if title[-1] not in ".?!":
        title += "."
    return f"{title} {summary}"


# --------------------------------------------------------------------------------------------- torch


class TorchEmbedder:
    """Plain sentence-transformers: the reference pipeline, and the way to use a GPU."""

    def __init__(self, model: str | os.PathLike | None = None, *, device: str = "cpu",
                 name: str | None = None):
        path, default_name = resolve_model(model)
        offline()
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        from sentence_transformers import SentenceTransformer

        with no_progress_bars():
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.name = name or default_name
        self.device = device
        self.runtime = "torch"
        get_dim = (getattr(self._model, "get_embedding_dimension", None)
                   or self._model.get_sentence_embedding_dimension)
        self.dim = int(get_dim())
        self.max_seq_length = int(self._model.max_seq_length)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"TorchEmbedder({self.name!r}, device={self.device!r})"


# ---------------------------------------------------------------------------------------------- onnx


class _Session:
    """One single-threaded ONNX Runtime session (lazily opened); shared by the worker threads."""

    def __init__(self, path: Path):
        self.path = path
        self._session = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.intra_op_num_threads = 1  # parallel over sub-batches instead (see module doc)
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                self._session = ort.InferenceSession(str(self.path), options,
                                                     providers=["CPUExecutionProvider"])
            return self._session


class OnnxEmbedder:
    """ONNX Runtime + fast tokenizer; mean pooling and L2 normalization as sentence-transformers.

    Bulk calls run the int8 graph. Small calls (at most ``exact_tokens`` tokens in all, e.g. search
    queries or one new paper) run the float32 graph when one is given: for a few milliseconds they get
    the exact vector (int8 alone gives short texts like titles a cosine of ~0.99 only). Either way a text
    gets nearly the same vector (cosine >= 0.99) whatever it is batched with.
    """

    def __init__(self, onnx_path: str | os.PathLike, tokenizer_path: str | os.PathLike, *, name: str,
                 fp32_path: str | os.PathLike | None = None, max_seq_length: int = 256,
                 pooling: str = "mean", threads: int | None = None,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, exact_tokens: int = DEFAULT_EXACT_TOKENS):
        from tokenizers import Tokenizer

        if pooling not in ("mean", "cls"):
            raise ValueError(f"unknown pooling {pooling!r}")
        self.name = name
        self.runtime = "onnx-int8"
        self.path = Path(onnx_path)
        self.fp32_path = Path(fp32_path) if fp32_path else None
        self.max_seq_length = max_seq_length
        self.pooling = pooling
        self.threads = max(1, threads or len(os.sched_getaffinity(0)))
        self.batch_tokens = batch_tokens
        self.exact_tokens = exact_tokens if self.fp32_path else 0
        self.exported = False  # set by build(): whether this call made the files
        self.export_seconds: float | None = None

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()  # tokenizer.json may pin padding/truncation (128 for MiniLM): we do both
        self._tokenizer.enable_truncation(max_length=max_seq_length)

        self._int8 = _Session(self.path)
        self._fp32 = _Session(self.fp32_path) if self.fp32_path else None
        session = self._int8.get()
        self._inputs = {i.name for i in session.get_inputs()}
        output = session.get_outputs()[0]
        self._output = output.name
        dim = output.shape[-1]
        self.dim = dim if isinstance(dim, int) else self._probe_dim()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def build(cls, model_path: str | os.PathLike, cache_dir: str | os.PathLike, *, name: str | None = None,
              threads: int | None = None, batch_tokens: int = DEFAULT_BATCH_TOKENS,
              exact_tokens: int = DEFAULT_EXACT_TOKENS) -> OnnxEmbedder:
        """Load the ONNX models of model_path from cache_dir, exporting them there first if missing."""
        model_dir = Path(model_path)
        if not model_dir.is_dir():
            raise ValueError(f"embedding model folder not found: {model_dir}")
        spec = model_spec(model_dir)
        name = name or folder_name(model_dir)
        stem = re.sub(r"[^\w.-]+", "_", name) + "-" + model_fingerprint(model_dir)
        int8, fp32 = Path(cache_dir) / f"{stem}.int8.onnx", Path(cache_dir) / f"{stem}.fp32.onnx"
        exported, seconds = False, None
        if not (int8.is_file() and fp32.is_file()):
            log.info("exporting %s to ONNX in %s (once)", model_dir, cache_dir)
            started = time.perf_counter()
            export_onnx(model_dir, fp32, int8)
            exported, seconds = True, time.perf_counter() - started
        embedder = cls(int8, model_dir / "tokenizer.json", name=name, fp32_path=fp32,
                       max_seq_length=spec["max_seq_length"], pooling=spec["pooling"], threads=threads,
                       batch_tokens=batch_tokens, exact_tokens=exact_tokens)
        embedder.exported, embedder.export_seconds = exported, seconds
        return embedder

    def _probe_dim(self) -> int:
        feed = self._feed(np.array([[101, 102]], np.int64), np.ones((1, 2), np.int64))
        return int(self._int8.get().run([self._output], feed)[0].shape[-1])

    def _feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feed.items() if k in self._inputs}

    def _plan(self, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """Sub-batches of indices, longest texts first; each at most batch_size texts and ~batch_tokens."""
        order = np.argsort(-lengths, kind="stable")
        batches, start = [], 0
        while start < len(order):
            longest = int(lengths[order[start]])
            size = max(1, min(batch_size, self.batch_tokens // max(longest, 1)))
            batches.append(order[start:start + size])
            start += size
        return batches

    def _run(self, session, encodings: list, lengths: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
        width = int(lengths[idx].max())
        ids = np.zeros((len(idx), width), np.int64)
        mask = np.zeros((len(idx), width), np.int64)
        for row, i in enumerate(idx):
            ids[row, :lengths[i]] = encodings[i].ids
            mask[row, :lengths[i]] = 1
        hidden = session.run([self._output], self._feed(ids, mask))[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # sentence-transformers: sum(h * mask) / clamp(sum(mask), 1e-9)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out[idx] = pooled / np.maximum(norms, 1e-12)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        batches = self._plan(lengths, batch_size)
        small = self._fp32 is not None and int(lengths.sum()) <= self.exact_tokens
        session = (self._fp32 if small else self._int8).get()
        if self.threads == 1 or len(batches) == 1:
            for idx in batches:
                self._run(session, encodings, lengths, idx, out)
        else:
            jobs = [self._executor().submit(self._run, session, encodings, lengths, idx, out)
                    for idx in batches]
            for job in jobs:
                job.result()
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embed")
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.name!r}, {str(self.path)!r}, threads={self.threads})"


def load_embedder(model: str | None = None, runtime: str = "onnx", device: str = "cpu",
                  cache_dir: Path | None = None) -> Embedder:
    """The embedder to use: int8 ONNX on CPU by default, sentence-transformers for runtime='torch' or a GPU.

    model: None for the bundled all-MiniLM-L6-v2, else a local model folder or a hub id already in the
    local Hugging Face cache. Raises ValueError for an unknown runtime or a model that is not there.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown embedding runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    path, name = resolve_model(model)
    if runtime == "torch" or device != "cpu":
        return TorchEmbedder(path, device=device, name=name)
    return OnnxEmbedder.build(path, cache_dir if cache_dir is not None else default_cache_dir(), name=name)
