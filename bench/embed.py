#!/usr/bin/env python3
"""Embedding speed: plain sentence-transformers vs our int8 ONNX embedder, on the same real abstracts.

    python bench/embed.py [--texts 1000] [--json] [--corpus PATH] [--cache-dir DIR]

Texts are the first N SciFact documents ("title. text"; most reach the model's 256-token limit). Both
runtimes embed the same texts in the same run, interleaved in chunks so that a busy machine slows both
alike; the one-time ONNX export is timed apart (export_s; a fresh temporary cache unless --cache-dir).
With --json the last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "data" / "retrieval" / "scifact" / "corpus.jsonl.gz"

try:
    from dailypapers.search.embedder import OnnxEmbedder, paper_text
    from dailypapers.search.model_files import bundled_model_path
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from dailypapers.search.embedder import OnnxEmbedder, paper_text
    from dailypapers.search.model_files import bundled_model_path


def read_texts(corpus: Path, n: int) -> list[str]:
    texts = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(paper_text(doc.get("title", ""), doc.get("text", "")))
            if len(texts) >= n:
                break
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=1000, help="how many abstracts (default 1000)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="BEIR corpus.jsonl.gz")
    ap.add_argument("--cache-dir", type=Path, help="ONNX cache to reuse (default: a fresh temporary one)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=128, help="texts per interleaved turn")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = read_texts(args.corpus, args.texts)
    if not texts:
        ap.error(f"no texts in {args.corpus}")
    model_dir = bundled_model_path()

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    plain = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        ours = OnnxEmbedder.build(model_dir, cache)
        export_s = ours.export_seconds or 0.0

        lengths = np.array([len(e.ids) for e in ours._tokenizer.encode_batch(texts)])
        warm = texts[: args.batch_size]
        plain.encode(warm, batch_size=args.batch_size)
        ours.embed(warm, batch_size=args.batch_size)

        load_before = os.getloadavg()[0]
        plain_vecs, our_vecs, plain_s, ours_s = [], [], 0.0, 0.0
        cpu = {"plain": 0.0, "ours": 0.0}  # process CPU seconds: less sensitive to other load
        for k, start in enumerate(range(0, len(texts), args.chunk)):
            chunk = texts[start:start + args.chunk]
            for which in (("plain", "ours") if k % 2 == 0 else ("ours", "plain")):
                t0, c0 = time.perf_counter(), time.process_time()
                if which == "plain":
                    plain_vecs.append(plain.encode(chunk, batch_size=args.batch_size, convert_to_numpy=True))
                    plain_s += time.perf_counter() - t0
                else:
                    our_vecs.append(ours.embed(chunk, batch_size=args.batch_size))
                    ours_s += time.perf_counter() - t0
                cpu[which] += time.process_time() - c0
        load_after = os.getloadavg()[0]
        ours.close()

    a = np.concatenate(plain_vecs).astype(np.float32)
    b = np.concatenate(our_vecs)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    cos = (a * b).sum(axis=1)
    n = len(texts)
    result = {
        "texts": n,
        "plain_texts_per_s": round(n / plain_s, 2),
        "ours_texts_per_s": round(n / ours_s, 2),
        "speedup": round(plain_s / ours_s, 2),
        "mean_cosine": round(float(cos.mean()), 5),
        "min_cosine": round(float(cos.min()), 5),
        "export_s": round(export_s, 2),
        "plain_s": round(plain_s, 2),
        "ours_s": round(ours_s, 2),
        "plain_cpu_s": round(cpu["plain"], 2),
        "ours_cpu_s": round(cpu["ours"], 2),
        "mean_tokens": round(float(lengths.mean()), 1),
        "share_truncated": round(float((lengths >= ours.max_seq_length).mean()), 3),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "ours_threads": ours.threads,
        "cpus": os.cpu_count(),
        "load_avg": [round(load_before, 2), round(load_after, 2)],
    }

    print(f"{n} SciFact abstracts, mean {result['mean_tokens']} tokens, "
          f"{result['share_truncated']:.0%} cut at {ours.max_seq_length}; {result['cpus']} CPUs, "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    print(f"{'runtime':<44} {'texts/s':>9} {'seconds':>9} {'CPU s':>9}")
    print(f"{'plain sentence-transformers (torch, batch ' + str(args.batch_size) + ')':<44} "
          f"{result['plain_texts_per_s']:>9.1f} {plain_s:>9.1f} {cpu['plain']:>9.1f}")
    print(f"{'ours (ONNX Runtime int8, length-sorted)':<44} {result['ours_texts_per_s']:>9.1f} "
          f"{ours_s:>9.1f} {cpu['ours']:>9.1f}")
    print(f"speedup {result['speedup']:.2f}x; cosine ours vs plain: mean {result['mean_cosine']:.5f}, "
          f"min {result['min_cosine']:.5f}; one-time export {export_s:.1f} s (not timed above)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
