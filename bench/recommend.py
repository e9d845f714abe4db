"""Recommendation quality on real reference libraries (citeulike-a), beside the baselines, in one run.

    python bench/recommend.py [--setting 1|10] [--titles F --train F --test F] [--tags] [--users N]
                              [--database sqlite|postgresql] [--workdir DIR] [--json]
    python bench/recommend.py --speed [--papers 100000] [--readers 2000] [--database ...]

The titles go in as papers through the ingest pipeline (the title is also the abstract: there is
none; with --tags the article's tags, the words readers filed it under (item-tag.dat and tags.dat
beside --titles), are its abstract and its keywords, as Hugging Face's ai_keywords are a paper's,
and every method below sees them), are embedded by
the product's embedder (the bundled MiniLM, through ``embed_backlog`` as `dailypapers embed` does; the vectors are cached by text in the work dir, so a rerun is quick),
every user of the training file becomes a reader whose training articles are saved as
``saved_list.toggle_saved`` saves them (in bulk, with its steps). Then ``recommend.for_reader`` gives each sampled reader's top 300, and
recall@50/100/300 (held-out articles found / held-out articles, averaged over readers) is printed
beside baselines computed here on the same inputs: popularity (training saves), mean cosine to the
library (zotero-arxiv-daily), a LinearSVC per reader on tf-idf of the titles (arxiv-sanity-lite),
a logistic regression per reader on the embeddings (Scholar Inbox). The baselines rank every article
outside the reader's training part, as the protocol says (citeulike-a's README).

--speed: latency instead of quality, at scale: bench/search.py's generated corpus (word-frequency
titles and abstracts, clustered unit vectors; 14 keywords each, word pairs of the abstract) of
``--papers`` papers, ``--readers`` readers with ten
saves each (a few topics per reader), then a reader's list recomputed (p50/p95), the same from the
cache (p50/p95), ``refresh`` making every reader's first row (a full ranking each: what a change of
signals costs), and ``refresh`` once ``--new`` papers were embedded (merged into every row).

Needs scikit-learn (``pip install -e '.[bench]'``). Files: gzip or plain, as in
../shared/data/recommend/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from dailypapers import community, recommend
from dailypapers.collections import saved as saved_list
from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search.backends import upkeep
from dailypapers.search.embedder import load_embedder
from dailypapers.search.vectors import embed_backlog, stored_vectors
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import papers, users
from dailypapers.validate import MAX_KEYWORDS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "recommend" / "citeulike-a"
CUTOFFS = (50, 100, 300)
NEGATIVES = 2000  # sampled non-library articles per reader for the per-reader classifiers


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def libraries(path: Path) -> list[list[int]]:
    """users.dat format: the count, then the article indices."""
    return [[int(x) for x in line.split()[1:]] for line in read_lines(path)]


def paper_id(i: int) -> str:
    return f"citeulike/{i:07d}"


class CachedEmbedder:
    """The product's embedder, with its vectors kept in a file by text (a rerun embeds nothing)."""

    def __init__(self, path: Path):
        self.path, self.inner, self.memo = path, None, {}
        if path.exists():
            data = np.load(path, allow_pickle=False)
            self.memo = dict(zip(data["keys"].tolist(), data["vectors"]))
            self.name, self.dim = str(data["name"]), int(data["vectors"].shape[1])
        else:
            self._load()

    def _load(self) -> None:
        self.inner = load_embedder()
        self.name, self.dim = self.inner.name, self.inner.dim

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def embed(self, texts, batch_size: int = 64) -> np.ndarray:  # noqa: ANN001
        missing = [t for t in texts if self.key(t) not in self.memo]
        if missing:
            if self.inner is None:
                self._load()
            for t, v in zip(missing, self.inner.embed(missing, batch_size=batch_size)):
                self.memo[self.key(t)] = v
        return np.stack([self.memo[self.key(t)] for t in texts])

    def save(self) -> None:
        keys = list(self.memo)
        np.savez(self.path, keys=np.array(keys), vectors=np.stack([self.memo[k] for k in keys]),
                 name=np.array(self.name))


def article_tags(titles_path: Path) -> list[list[str]]:
    """Each article's tags as words (["protein folding", "molecular dynamics", ...]), from
    item-tag.dat (per article: the count, then tag indices) and tags.dat (one tag per line)."""
    words = [w.replace("_", " ").replace("-", " ") for w in read_lines(titles_path.with_name("tags.dat.gz"))]
    return [[words[int(t)] for t in line.split()[1:]] for line in read_lines(titles_path.with_name("item-tag.dat.gz"))]


def load_database(url: str, data_dir: Path, titles: list[str], tags: list[list[str]], train: list[list[int]],
                  embedder: CachedEmbedder, log) -> tuple:  # noqa: ANN001
    """Papers, embeddings, readers and their saves, through the product's own code."""
    engine = open_engine(url, data_dir=data_dir)
    migrate(engine)
    started = time.perf_counter()
    def keywords(tags: list[str]) -> list[str]:  # as many as a paper may have, none empty
        return list(dict.fromkeys(t.strip() for t in tags if t.strip()))[:MAX_KEYWORDS]

    report = ingest(engine, [(f"title {i}", Paper(id=paper_id(i), title=t, summary=", ".join(k) or t,
                                                  keywords=keywords(k)))
                             for i, (t, k) in enumerate(zip(titles, tags))])
    if report.rejected:
        raise SystemExit(f"{report.rejected} articles rejected by the ingest")
    log(f"ingested {report.inserted:,} papers in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    embed_backlog(engine, embedder, batch_size=64)
    embedder.save()
    upkeep(engine)
    log(f"embedded and indexed in {time.perf_counter() - started:.0f} s")
    with engine.connect() as conn:
        pk_of = dict(conn.execute(papers.select().with_only_columns(papers.c.id, papers.c.pk)).all())
    with engine.begin() as conn:
        user_pks = conn.execute(users.insert().returning(users.c.pk, sort_by_parameter_order=True), [
            {"username": f"reader{u}", "created_at": _EPOCH} for u in range(len(train))]).scalars().all()
    started = time.perf_counter()
    save_libraries(engine, user_pks, train)
    log(f"saved {sum(map(len, train)):,} papers for {len(train):,} readers "
        f"in {time.perf_counter() - started:.0f} s")
    return engine, user_pks, pk_of


def save_libraries(engine, user_pks: list[int], train: list[list[int]], chunk: int = 200,  # noqa: ANN001
                   pk_for=None) -> None:  # noqa: ANN001
    """What ``saved_list.toggle_saved`` does for each paper (the reader's default collection, the
    item, a new signals version), a few hundred readers per transaction: one save per transaction
    took 10 ms here, 9 minutes for the 55,510 saves of P=10."""
    from dailypapers.store.schema import collection_items

    if pk_for is None:
        with engine.connect() as conn:
            pk_of = dict(conn.execute(select(papers.c.id, papers.c.pk)).all())
        pk_for = lambda i: pk_of[paper_id(i)]  # noqa: E731
    for start in range(0, len(train), chunk):
        with engine.begin() as conn:
            rows = []
            for u in range(start, min(start + chunk, len(train))):
                collection = saved_list.default_collection(conn, user_pks[u], _EPOCH)
                rows += [{"collection_pk": collection, "paper_pk": pk_for(i), "position": -1 - n,
                          "added_at": _EPOCH} for n, i in enumerate(reversed(train[u]))]
                community.signals_changed(conn, user_pks[u])
            if rows:
                conn.execute(insert(collection_items), rows)


from datetime import datetime  # noqa: E402

_EPOCH = datetime(2024, 1, 1)


def recall(ranked: list[int], held_out: list[int]) -> dict[int, float]:
    wanted = set(held_out)
    return {m: len(wanted.intersection(ranked[:m])) / len(wanted) for m in CUTOFFS}


def top_outside(scores: np.ndarray, library: list[int], k: int = max(CUTOFFS)) -> list[int]:
    scores = scores.astype(np.float64).copy()
    scores[library] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return top[np.lexsort((top, -scores[top]))].tolist()


class Baselines:
    """The comparison methods, each ranking every article outside the reader's training part."""

    def __init__(self, titles: list[str], train: list[list[int]], vectors: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.n, self.vectors = len(titles), vectors
        self.popularity = np.bincount([i for items in train for i in items], minlength=self.n).astype(float)
        self.tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(titles).tocsr()

    def _negatives(self, u: int, library: list[int]) -> np.ndarray:
        rng = np.random.default_rng(u)
        picked = rng.choice(self.n, NEGATIVES + len(library), replace=False)
        return picked[~np.isin(picked, library)][:NEGATIVES]

    def rank(self, name: str, u: int, library: list[int]) -> list[int]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        if name == "popularity":
            return top_outside(self.popularity, library)
        if name == "mean cosine":
            return top_outside(self.vectors @ self.vectors[library].mean(axis=0), library)
        negatives = self._negatives(u, library)
        y = np.r_[np.ones(len(library)), np.zeros(len(negatives))]
        if name == "tf-idf SVM":  # arxiv-sanity-lite: LinearSVC, C=0.01, class_weight balanced
            from scipy.sparse import vstack

            model = LinearSVC(C=0.01, class_weight="balanced").fit(
                vstack([self.tfidf[library], self.tfidf[negatives]]), y)
            return top_outside(model.decision_function(self.tfidf), library)
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=300, solver="liblinear").fit(
            np.vstack([self.vectors[library], self.vectors[negatives]]), y)
        return top_outside(model.decision_function(self.vectors), library)


BASELINES = ("popularity", "mean cosine", "tf-idf SVM", "logreg on embeddings")


def postgres_url(workdir: Path, setting: int) -> str:
    """A fresh database on a pgserver kept under the work dir (as bench/search.py keeps its own)."""
    import pgserver
    from sqlalchemy import create_engine, make_url, text

    server = pgserver.get_server(str(workdir / "pg"), cleanup_mode="stop")
    url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"bench_recommend_{setting}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


KEYWORDS_PER_PAPER = 14  # the most Hugging Face's ai_keywords give a paper in the recorded feed (6-14, 9.6 on average)


def give_keywords(engine, log) -> None:  # noqa: ANN001
    """Keywords for the generated papers that have none, as Hugging Face gives papers theirs: pairs
    of words from the paper's own abstract (so their frequencies follow the corpus's words)."""
    from sqlalchemy import bindparam, update

    with engine.connect() as conn:
        rows = conn.execute(select(papers.c.pk, papers.c.summary).where(papers.c.keywords.is_(None))).all()
    if not rows:
        return
    started, rng = time.perf_counter(), np.random.default_rng(7)
    values = []
    for pk, summary in rows:
        words = summary.rstrip(".").lower().split()
        starts = rng.choice(len(words) - 1, KEYWORDS_PER_PAPER, replace=False)
        values.append({"b_pk": pk, "keywords": [f"{words[i]} {words[i + 1]}" for i in starts]})
    with engine.begin() as conn:
        conn.execute(update(papers).where(papers.c.pk == bindparam("b_pk")), values)
    log(f"keywords given to {len(rows):,} papers in {time.perf_counter() - started:.0f} s")


def speed(args, log) -> dict:  # noqa: ANN001
    """Latency at scale (see the module's docstring)."""
    from sqlalchemy import func, update

    import search as corpus  # bench/search.py: the generated corpus and its databases

    from dailypapers.store.schema import paper_embeddings, recommendations

    # The generated vectors go under the bundled model's name, as bench/search.py and bench/web.py
    # label the corpus they share (no query is embedded here).
    model, n = load_embedder().name, args.papers
    if args.database == "postgresql":
        engine, _, _ = corpus.build_postgresql(corpus.postgres_url(args.workdir), n, model, args.workdir)
    else:
        engine, _, _ = corpus.build(args.workdir, n, model)
    give_keywords(engine, log)
    with engine.connect() as conn:
        pks = np.array(conn.execute(select(papers.c.pk).order_by(papers.c.pk)).scalars().all())
        vectors = stored_vectors(conn, pks[::10].tolist())  # topics: clusters seen in a tenth of the papers
        stale = conn.execute(select(users.c.pk).where(users.c.username.like("speed%"))).scalars().all()
    with engine.begin() as conn:  # readers of an earlier run go; this run's are made anew
        if stale:
            from sqlalchemy import delete

            from dailypapers.store.schema import collection_items, collections
            mine = select(collections.c.pk).where(collections.c.user_pk.in_(stale))
            conn.execute(delete(collection_items).where(collection_items.c.collection_pk.in_(mine)))
            conn.execute(delete(collections).where(collections.c.user_pk.in_(stale)))
            conn.execute(delete(recommendations).where(recommendations.c.user_pk.in_(stale)))
            conn.execute(delete(users).where(users.c.pk.in_(stale)))
        user_pks = conn.execute(users.insert().returning(users.c.pk, sort_by_parameter_order=True), [
            {"username": f"speed{u}", "created_at": _EPOCH} for u in range(args.readers)]).scalars().all()
    rng = np.random.default_rng(3)
    sample = np.array(list(vectors.values()))
    sample_pks = np.array(list(vectors))
    libraries = []
    for _ in range(args.readers):  # two or three topics, ten papers: each a neighbour of a topic's paper
        topics = rng.choice(len(sample), rng.integers(2, 4), replace=False)
        near = np.unique(np.concatenate([sample_pks[np.argsort(-(sample @ sample[t]))[:10]] for t in topics]))
        libraries.append(rng.choice(near, 10, replace=False).tolist())
    started = time.perf_counter()
    save_libraries(engine, user_pks, libraries, pk_for=int)
    log(f"{args.readers:,} readers saved 10 papers each in {time.perf_counter() - started:.0f} s")

    measured = user_pks[:min(200, len(user_pks))]
    recomputed, cached = [], []
    for user in measured:
        t = time.perf_counter()
        recommend.for_reader(engine, user, limit=50)
        recomputed.append(time.perf_counter() - t)
        t = time.perf_counter()
        recommend.for_reader(engine, user, limit=50)
        cached.append(time.perf_counter() - t)
    with engine.begin() as conn:  # every row stale by its signals: each reader ranked anew
        conn.execute(update(recommendations).values(signals_version=-1))
    started = time.perf_counter()
    refreshed = recommend.refresh(engine, user_pks)
    refresh_s = time.perf_counter() - started
    log(f"refresh: {refreshed:,} readers ranked anew in {refresh_s:.0f} s")
    with engine.begin() as conn:  # the newest --new embeddings arrive after every row was made
        version = conn.execute(select(func.max(paper_embeddings.c.seq))).scalar_one()
        conn.execute(update(recommendations).values(embeddings_seq=version - args.new))
    started = time.perf_counter()
    merged = recommend.refresh(engine, user_pks)
    merge_s = time.perf_counter() - started
    engine.dispose()
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 1)  # noqa: E731
    per_reader = lambda seconds, count: round(seconds * 1000 / max(count, 1), 1)  # noqa: E731
    summary = {"database": args.database, "papers": n, "readers": args.readers,
               "recomputed_ms": {"p50": ms(recomputed, 50), "p95": ms(recomputed, 95)},
               "cached_ms": {"p50": ms(cached, 50), "p95": ms(cached, 95)},
               "refresh": {"readers": refreshed, "seconds": round(refresh_s, 1),
                           "ms_per_reader": per_reader(refresh_s, refreshed)},
               "refresh_new_papers": {"readers": merged, "new_papers": args.new, "seconds": round(merge_s, 1),
                                      "ms_per_reader": per_reader(merge_s, merged)}}
    log(f"\n{n:,} papers, {args.database}: a reader's 50 recommendations recomputed "
        f"p50 {summary['recomputed_ms']['p50']} / p95 {summary['recomputed_ms']['p95']} ms, "
        f"from the cache p50 {summary['cached_ms']['p50']} / p95 {summary['cached_ms']['p95']} ms "
        f"({len(measured)} readers); refresh of {refreshed:,} readers ranked anew {refresh_s:.0f} s "
        f"({summary['refresh']['ms_per_reader']} ms per reader); after {args.new:,} new papers, "
        f"refresh of {merged:,} readers {merge_s:.1f} s ({summary['refresh_new_papers']['ms_per_reader']} "
        f"ms per reader)")
    if args.json:
        print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", type=int, choices=(1, 10), default=10)
    parser.add_argument("--titles", type=Path, default=DATA / "titles.txt.gz")
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--tags", action="store_true", help="each article's tags as its abstract and keywords")
    parser.add_argument("--users", type=int, default=0, help="readers measured, a sample (default all)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dailypapers-bench-recommend")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--speed", action="store_true", help="latency at scale instead of quality")
    parser.add_argument("--papers", type=int, default=100_000, help="--speed: generated papers")
    parser.add_argument("--readers", type=int, default=2000, help="--speed: readers refreshed")
    parser.add_argument("--new", type=int, default=500, help="--speed: papers embedded before the last refresh")
    args = parser.parse_args(argv)
    train_path = args.train or DATA / "splits" / f"cf-train-{args.setting}-users.dat.gz"
    test_path = args.test or DATA / "splits" / f"cf-test-{args.setting}-users.dat.gz"
    args.workdir.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    if args.speed:
        return speed(args, log)

    # One title holds a control character, which the ingest rejects: a space instead, for every method.
    titles = [re.sub(r"[\x00-\x1f\x7f]", " ", t) for t in read_lines(args.titles)]
    tags = article_tags(args.titles) if args.tags else [[] for _ in titles]
    train, test = libraries(train_path), libraries(test_path)
    measured = [u for u in range(len(train)) if test[u] and train[u]]
    if args.users and args.users < len(measured):
        measured = sorted(np.random.default_rng(0).choice(measured, args.users, replace=False).tolist())
    embedder = CachedEmbedder(args.workdir / "title-vectors.npz")
    if args.database == "postgresql":
        url = postgres_url(args.workdir, args.setting)
    else:
        db = args.workdir / f"recommend-{args.setting}.db"
        for leftover in args.workdir.glob(f"recommend-{args.setting}.db*"):
            leftover.unlink()
        # The search indexes beside a database of the same name would describe the old rows.
        for leftover in (args.workdir / "vectors").glob(f"recommend-{args.setting}.*"):
            leftover.unlink()
        shutil.rmtree(args.workdir / "fulltext" / f"recommend-{args.setting}.v1", ignore_errors=True)
        url = f"sqlite:///{db}"
    engine, user_pks, pk_of = load_database(url, args.workdir, titles, tags, train, embedder, log)

    index_of = {pid: int(pid.split("/")[1]) for pid in pk_of}
    ours = {m: [] for m in CUTOFFS}
    started, times = time.perf_counter(), []
    for u in measured:
        t = time.perf_counter()
        found = recommend.for_reader(engine, user_pks[u], limit=max(CUTOFFS))
        times.append(time.perf_counter() - t)
        for m, r in recall([index_of[r.paper_id] for r in found], test[u]).items():
            ours[m].append(r)
    log(f"ours: {len(measured):,} readers in {time.perf_counter() - started:.0f} s "
        f"(p50 {np.percentile(times, 50) * 1000:.0f} ms, p95 {np.percentile(times, 95) * 1000:.0f} ms per reader, "
        f"recomputed)")

    with engine.connect() as conn:
        stored = stored_vectors(conn, pk_of.values())
    vectors = np.stack([stored[pk_of[paper_id(i)]] for i in range(len(titles))])
    baselines = Baselines([f"{t}. {', '.join(k)}" if k else t for t, k in zip(titles, tags)], train, vectors)
    results = {}
    for name in BASELINES:
        started, found = time.perf_counter(), {m: [] for m in CUTOFFS}
        for u in measured:
            for m, r in recall(baselines.rank(name, u, train[u]), test[u]).items():
                found[m].append(r)
        results[name] = {f"recall_at_{m}": round(float(np.mean(v)), 4) for m, v in found.items()}
        log(f"{name}: {time.perf_counter() - started:.0f} s")
    engine.dispose()

    summary = {"setting": args.setting, "database": args.database, "readers": len(measured), "tags": args.tags,
               **{f"ours_recall_at_{m}": round(float(np.mean(v)), 4) for m, v in ours.items()},
               "baselines": results}
    rows = [("dailypapers", {f"recall_at_{m}": summary[f"ours_recall_at_{m}"] for m in CUTOFFS}),
            *results.items()]
    log(f"\nP={args.setting}, {len(measured):,} readers, {args.database}{', tags as abstracts and keywords' if args.tags else ''}")
    log(f"{'method':24s}" + "".join(f"{'recall@' + str(m):>12s}" for m in CUTOFFS))
    for name, r in rows:
        log(f"{name:24s}" + "".join(f"{r[f'recall_at_{m}']:12.3f}" for m in CUTOFFS))
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
