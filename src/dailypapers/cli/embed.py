"""`dailypapers embed` and `dailypapers reindex`: embeddings and the search indexes (the backend's).

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
    from dailypapers.search.backends import backend_for, upkeep
    from dailypapers.search.embedder import load_embedder
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
    # New vectors: the index is rewritten now rather than each search scoring them apart.
    size = backend_for(engine).index_vectors(engine, embedder.name, fresh=written > 0)
    upkeep(engine)
    if size is not None:
        line += f"; vector index: {size:,} vectors"
    typer.echo(line)


def reindex() -> None:
    """Rebuild the search indexes afresh from the stored papers and embeddings."""
    from dailypapers.search.backends import backend_for

    engine = open_store()
    try:
        lines = backend_for(engine).rebuild(engine)
    except ValueError as exc:
        fail(str(exc))
    for line in lines:
        typer.echo(line)
