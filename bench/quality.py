"""Search quality through the product's own path (ingest, embed, search), side by side.

    python bench/quality.py [--split test|train] [--json] [--workdir DIR] [--dense-weight W]

SciFact (BEIR, ../shared/data/retrieval/scifact): nDCG@10 and recall@100 of BM25 alone, dense alone,
reciprocal rank fusion, and dailypapers' hybrid fusion. Tune on --split train; report on test.
Published references on the test split: BM25 0.665, all-MiniLM-L6-v2 0.645.
Sample queries (bench/sample_queries.tsv, over the bundled sample corpus): hit@1 / hit@3 / MRR for
paraphrases (no shared words) and exact titles, names and phrases.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search.embedder import load_embedder
from dailypapers.search.hybrid import search
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import migrate, open_engine

HERE = Path(__file__).resolve().parent
SCIFACT = HERE.parents[1] / "shared" / "data" / "retrieval" / "scifact"
MODES = ("text", "dense", "rrf", "hybrid")


def scifact_id(doc_id: str) -> str:
    return f"dp-{int(doc_id):012x}"  # SciFact ids are digits; stored under ids of our own


def load_scifact(engine, corpus: Path) -> None:  # noqa: ANN001
    def records():
        with gzip.open(corpus / "corpus.jsonl.gz", "rt") as f:
            for n, line in enumerate(f, 1):
                doc = json.loads(line)
                yield f"line {n}", Paper(id=scifact_id(doc["_id"]), title=doc["title"] or doc["text"][:80],
                                         summary=doc["text"] or doc["title"], source="scifact")

    report = ingest(engine, records(), batch_size=2000)
    assert report.rejected == 0, report.rejections[:3]


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def prepared(workdir: Path, name: str, load, embedder):  # noqa: ANN001
    engine = open_engine(f"sqlite:///{workdir / (name + '.db')}")
    migrate(engine)
    with engine.connect() as conn:
        empty = conn.exec_driver_sql("SELECT count(*) FROM papers").scalar() == 0
    if empty:
        load(engine)
    started = time.perf_counter()
    n = embed_backlog(engine, embedder)
    if n:
        print(f"{name}: embedded {n:,} papers in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return engine


def eval_scifact(engine, embedder, split: str, corpus: Path, weight: float) -> dict:  # noqa: ANN001
    qrels: dict[str, set[str]] = {}
    with open(corpus / "qrels" / f"{split}.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], set()).add(scifact_id(row["corpus-id"]))
    queries = {}
    with open(corpus / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    results = {}
    for mode in MODES:
        ndcg = recall = 0.0
        for qid, text in queries.items():
            page = search(engine, text, limit=100, embedder=embedder, mode=mode, dense_weight=weight)
            ranked = [h.paper["id"] for h in page.hits]
            ndcg += ndcg_at_10(ranked, qrels[qid])
            recall += len(set(ranked[:100]) & qrels[qid]) / len(qrels[qid])
        results[mode] = {"ndcg@10": round(ndcg / len(queries), 4), "recall@100": round(recall / len(queries), 4)}
    return results | {"queries": len(queries)}


def _load_queries(corpus: Path, split: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    qrels: dict[str, set[str]] = {}
    with open(corpus / "qrels" / f"{split}.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], set()).add(scifact_id(row["corpus-id"]))
    with open(corpus / "queries.jsonl") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f) if q["_id"] in qrels}
    return queries, qrels


def sweep(engine, embedder, split: str, corpus: Path) -> list[tuple]:  # noqa: ANN001
    """Fusion settings tried on the same candidates: (nDCG@10, weight, coverage on/off), best first."""
    from dailypapers.search.filters import Filters
    from dailypapers.search.hybrid import fuse, gather
    from dailypapers.search.query import parse_query

    queries, qrels = _load_queries(corpus, split)
    found = {qid: gather(engine, parse_query(text), Filters(), embedder, "hybrid", 100)
             for qid, text in queries.items()}
    rows = []
    for weight in (0.4, 0.5, 0.6):
        for use_cov in (True, False):
            for bonus in (0.0, 0.1, 0.2, 0.3):
                total = 0.0
                for qid, c in found.items():
                    scores = fuse(c.text, c.dense, c.coverage if use_cov else 1.0, "hybrid", weight, c.phrase, bonus)
                    ranked = sorted(c.pks, key=lambda pk: scores.get(pk, 0.0), reverse=True)
                    total += ndcg_at_10([c.rows[pk]["id"] for pk in ranked if pk in c.rows], qrels[qid])
                rows.append((round(total / len(found), 4), weight, use_cov, bonus))
    total = 0.0
    for qid, c in found.items():
        scores = fuse(c.text, c.dense, 1.0, "rrf")
        ranked = sorted(c.pks, key=lambda pk: scores.get(pk, 0.0), reverse=True)
        total += ndcg_at_10([c.rows[pk]["id"] for pk in ranked if pk in c.rows], qrels[qid])
    rows.append((round(total / len(found), 4), "rrf", None, None))
    return sorted(rows, key=lambda r: r[0], reverse=True)


def eval_sample(engine, embedder, weight: float) -> dict:  # noqa: ANN001
    rows = [line.rstrip("\n").split("\t") for line in (HERE / "sample_queries.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    out = {}
    for mode in MODES:
        for kind in ("paraphrase", "exact"):
            ranks = []
            for k, query, expected in rows:
                if k != kind:
                    continue
                ids = [h.paper["id"] for h in search(engine, query, limit=20, embedder=embedder, mode=mode,
                                                     dense_weight=weight).hits]
                ranks.append(ids.index(expected) + 1 if expected in ids else None)
            out[f"{mode}_{kind}"] = {
                "hit@1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
                "hit@3": round(sum(r is not None and r <= 3 for r in ranks) / len(ranks), 3),
                "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 3),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, help="Keep the databases here between runs.")
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    parser.add_argument("--dense-weight", type=float, default=None)
    parser.add_argument("--sweep", action="store_true", help="Try fusion weights on --split (use train).")
    args = parser.parse_args()
    from dailypapers.search.hybrid import DENSE_WEIGHT

    weight = DENSE_WEIGHT if args.dense_weight is None else args.dense_weight
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dp-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(cache_dir=workdir / "models")
    sci = prepared(workdir, "scifact", lambda e: load_scifact(e, args.corpus), embedder)
    sample_bytes = files("dailypapers.sample").joinpath("papers.json").read_bytes()
    sample = prepared(workdir, "sample", lambda e: ingest(e, parse_hf_json(sample_bytes)), embedder)

    if args.sweep:
        for row in sweep(sci, embedder, args.split, args.corpus):
            print("nDCG@10 %.4f  dense_weight %s  coverage %s  phrase_bonus %s" % row)
        return
    figures = {"split": args.split, "dense_weight": weight,
               "scifact": eval_scifact(sci, embedder, args.split, args.corpus, weight),
               "sample": eval_sample(sample, embedder, weight)}
    print(f"SciFact {args.split} ({figures['scifact']['queries']} queries)   nDCG@10   recall@100")
    for mode in MODES:
        r = figures["scifact"][mode]
        print(f"  {mode:<8}                        {r['ndcg@10']:.3f}     {r['recall@100']:.3f}")
    print("Sample queries            hit@1   hit@3   MRR")
    for key, r in figures["sample"].items():
        print(f"  {key:<22}  {r['hit@1']:.2f}    {r['hit@3']:.2f}    {r['mrr']:.2f}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
