"""`dailypapers ingest ...`: every source through the one ingest pipeline."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import partial
from importlib.resources import files
from pathlib import Path

import typer
from tqdm import tqdm

from dailypapers.cli.common import fail, open_store, parse_day, settings_or_fail
from dailypapers.domain import Sourced
from dailypapers.ingest import Rejection, ingest
from dailypapers.sources.common import SourceError

app = typer.Typer(help="Load papers from arXiv and Hugging Face sources.", no_args_is_help=True)
_embed_after = True


@app.callback()
def options(embed: bool = typer.Option(True, "--embed/--no-embed",
                                       help="Embed the new papers for semantic search afterwards "
                                            "(or leave them to the jobs, or `dailypapers embed`).")) -> None:
    global _embed_after
    _embed_after = embed

SHOWN_REJECTIONS = 100
REJECTED_EXIT = 3  # finished, but some records were rejected


def run(records: Iterable[Sourced] | Callable[[], Iterable[Sourced]], on_commit: Callable[[], None] | None = None,
        read_ahead: bool = False) -> None:
    """Ingest with a progress bar (in a terminal), rejections on stderr, and a summary line."""
    settings = settings_or_fail()
    engine = open_store()
    shown = 0

    def show(rejection: Rejection) -> None:
        nonlocal shown
        shown += 1
        if shown <= SHOWN_REJECTIONS:
            tqdm.write(f"rejected {rejection}", file=sys.stderr)

    bar = tqdm(unit=" papers", disable=not sys.stderr.isatty(), file=sys.stderr, smoothing=0.1)
    try:
        report = ingest(engine, records, batch_size=settings.batch_size,
                        feature_categories=settings.feature_categories,
                        on_progress=bar.update, on_reject=show, on_commit=on_commit, read_ahead=read_ahead)
    except SourceError as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    if report.inserted or report.updated:
        _after(engine, settings)
    if shown > SHOWN_REJECTIONS:
        typer.echo(f"... and {shown - SHOWN_REJECTIONS:,} more rejected records", err=True)
    typer.echo(report.summary())
    if report.rejected:
        raise SystemExit(REJECTED_EXIT)


def _after(engine, settings) -> None:  # noqa: ANN001
    """The indexes brought up to date, then the new papers embedded here (with a progress bar) or,
    with --no-embed, left to the jobs (a worker on PostgreSQL, `serve` on SQLite, or `dailypapers embed`)."""
    from dailypapers.jobs import after_ingest

    with tqdm(unit=" embedded", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        try:
            embedded = after_ingest(engine, settings, defer=not _embed_after, on_progress=bar.update)
        except (ValueError, OSError, ImportError) as exc:
            fail(f"cannot embed the new papers: {exc} (they are stored; run `dailypapers embed` later)")
    if embedded:
        typer.echo(f"{embedded:,} papers embedded for search by meaning")


@app.command()
def snapshot(file: Path = typer.Argument(..., help="arxiv-metadata-oai-snapshot.json, plain or gzipped.")) -> None:
    """Load the arXiv metadata snapshot (JSON lines, streamed: any size)."""
    from dailypapers.sources.snapshot import read_snapshot

    if not file.is_file():
        fail(f"{file}: no such file")
    run(partial(read_snapshot, file), read_ahead=True)


@app.command("hf-daily")
def hf_daily(file: Path = typer.Argument(..., help="JSON from /api/daily_papers or /api/papers/{id}.")) -> None:
    """Import Hugging Face daily papers with their upvotes, submitters and feed dates."""
    from dailypapers.sources.hf_daily import read_hf_json

    run(read_hf_json(file))


@app.command()
def sample() -> None:
    """Load the bundled sample: 98 papers from a Daily Papers page, over ten feed days."""
    from dailypapers.sources.hf_daily import parse_hf_json

    run(parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes(), "sample"))




@app.command()
def oai(
    from_: str = typer.Option(..., "--from", help="Harvest records changed on or after this day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="... and on or before this day."),
    set_: str | None = typer.Option(None, "--set", help="An OAI set, e.g. cs or physics:hep-th."),
    prefix: str = typer.Option("arXiv", "--format", help="Metadata format: arXiv or arXivRaw (all versions)."),
    checkpoint: Path | None = typer.Option(None, help="Resume file; default: in the data directory."),
) -> None:
    """Harvest arXiv by OAI-PMH; an interrupted harvest resumes where it stopped."""
    from dailypapers.sources.oai import HarvestError, OaiHarvest

    settings = settings_or_fail()
    if prefix not in ("arXiv", "arXivRaw"):
        fail(f"--format {prefix!r}: use arXiv or arXivRaw")
    start, end = parse_day(from_, "--from"), parse_day(until, "--until")
    if end and start and end < start:
        fail("--until is before --from")
    checkpoint = checkpoint or settings.data_dir / "oai-checkpoint.json"
    try:
        harvest = OaiHarvest(settings.oai_base_url, metadata_prefix=prefix, from_=start, until=end, set_=set_,
                             checkpoint=checkpoint, delay=settings.request_delay)
        run(harvest, on_commit=harvest.committed)
    except HarvestError as exc:
        fail(str(exc))


@app.command()
def arxiv(ids: list[str] = typer.Argument(..., help="arXiv ids or URLs, e.g. 2104.12255 or hep-th/9901001v2.")) -> None:
    """Fetch papers by id from the arXiv API."""
    from dailypapers.sources.arxiv_api import ArxivApiError, fetch_papers

    settings = settings_or_fail()
    try:
        run(fetch_papers(ids, base_url=settings.arxiv_api_url, delay=settings.request_delay))
    except ArxivApiError as exc:
        fail(str(exc))
