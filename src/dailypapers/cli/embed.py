"""`dailypapers embed` and `dailypapers reindex`: the search indexes beside the database.

Registered by the main app as plain commands: ``app.command()(embed)``, ``app.command()(reindex)``.
"""

from __future__ import annotations

import sys
import time

import typer
from tqdm import tqdm

from dailypapers.cli.common import fail, open_store, settings_or_fail


def embed(
    batch_size: int = typer.Option(64, min=1, help="Papers per model call and per transaction."),
    device: str = typer.Option(None, help="cpu or cuda (default: DAILYPAPERS_EMBEDDING_DEVICE, else cpu)."),
    runtime: str = typer.Option(None, help="onnx (fast int8 on CPU) or torch "
                                           "(default: DAILYPAPERS_EMBEDDING_RUNTIME, else onnx)."),
) -> None:
    """Embed every paper that has no embedding yet; resumes after an interruption."""
    from dailypapers.search.embedder import load_embedder
    from dailypapers.search.vector_index import index_dir, open_index, rebuild_index
    from dailypapers.search.vectors import backlog_size, embed_backlog

    settings = settings_or_fail()
    engine = open_store()
    try:
        embedder = load_embedder(settings.embedding_model, runtime or settings.embedding_runtime,
                                 device or settings.embedding_device, cache_dir=settings.data_dir / "models")
    except (ValueError, OSError, ImportError) as exc:
        fail(f"cannot load the embedding model: {exc}")
    total = backlog_size(engine, embedder.name)
    bar = tqdm(total=total, unit=" papers", disable=not sys.stderr.isatty(), file=sys.stderr, smoothing=0.1)
    started = time.perf_counter()
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        bar.update(n)

    try:
        written = embed_backlog(engine, embedder, batch_size=batch_size, on_progress=progress)
    except KeyboardInterrupt:
        bar.close()
        typer.echo(f"interrupted after {done:,} of {total:,} papers; "
                   "run `dailypapers embed` again to continue", err=True)
        raise
    bar.close()
    seconds = time.perf_counter() - started
    rate = written / seconds if seconds > 0 else 0.0
    line = f"{written:,} papers embedded with {embedder.name} in {seconds:.1f} s ({rate:,.1f} papers/s)"
    if total > written:
        line += f"; {total - written:,} changed meanwhile and wait for the next run"
    if engine.dialect.name == "sqlite" and index_dir(engine) is not None:
        index = (rebuild_index(engine, index_dir(engine), embedder.name) if written
                 else open_index(engine, index_dir(engine), embedder.name))  # built only when missing
        line += f"; vector index: {len(index):,} vectors"
    typer.echo(line)


def reindex() -> None:
    """Rebuild the search indexes: full text (SQLite) and vectors, from the stored papers and embeddings."""
    from dailypapers.search import fulltext
    from dailypapers.search.vector_index import current_model, index_dir, rebuild_index
    from dailypapers.search.vectors import reindex_postgresql

    engine = open_store()
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        reindex_postgresql(engine)
        typer.echo(f"PostgreSQL HNSW index rebuilt in {time.perf_counter() - started:.1f} s")
        return
    count = fulltext.sync(engine, rebuild=True, threads=fulltext.ALONE_THREADS)
    typer.echo(f"full-text index rebuilt: {count:,} papers in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with engine.connect() as conn:
        model = current_model(conn)
    if model is None:
        typer.echo("no vector index: there are no embeddings yet (run `dailypapers embed`)")
        return
    directory = index_dir(engine)
    if directory is None:
        fail("an in-memory database keeps no index file")
    index = rebuild_index(engine, directory, model)
    seconds = time.perf_counter() - started
    typer.echo(f"vector index rebuilt: {len(index):,} vectors of {model} in {seconds:.1f} s -> {index.path}")
