"""`dailypapers worker` and `dailypapers jobs`: the work the site does by itself (see jobs/).

Registered by the main app: ``app.command()(worker)``, ``app.add_typer(jobs_app, name="jobs")``.
"""

from __future__ import annotations

import json
import logging

import typer

from dailypapers.cli.common import fail, open_store, settings_or_fail

jobs_app = typer.Typer(help="The jobs: what runs by itself, and on PostgreSQL the queue.",
                       invoke_without_command=True)

IN_PROCESS = ("SQLite: the jobs run inside `dailypapers serve` (a background thread in each worker): "
              "embedding and index upkeep every {interval:g} s, the harvest of {sets} ({schedule}), "
              "mail {mail}, the purge hourly. There is no queue to list.")


def worker(concurrency: int = typer.Option(2, min=1, max=32, help="Jobs this worker runs at once."),
           once: bool = typer.Option(False, "--once", help="Stop when the queue is empty.")) -> None:
    """Run the jobs on PostgreSQL (start one or more, on any machine); stop with Ctrl-C."""
    from dailypapers.jobs import uses_queue
    from dailypapers.jobs.queue import run_worker

    settings = settings_or_fail()
    if not uses_queue(open_store()):
        fail("a worker needs PostgreSQL (DAILYPAPERS_DATABASE_URL); with SQLite the jobs run inside "
             "`dailypapers serve`")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per page is the harvest's own
    typer.echo(f"worker started: {concurrency} at once; harvest of "
               f"{', '.join(settings.harvest_sets) or 'nothing (DAILYPAPERS_HARVEST_SETS is empty)'}", err=True)
    run_worker(settings, concurrency=concurrency, wait=not once)


@jobs_app.callback()
def jobs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the queued, running and failed jobs (PostgreSQL), or say what runs in-process (SQLite)."""
    if ctx.invoked_subcommand is not None:
        return
    from dailypapers.jobs import uses_queue
    from dailypapers.jobs.queue import list_jobs

    settings = settings_or_fail()
    if not uses_queue(open_store()):
        mail = "when due from " + settings.mail_send_time + " UTC" if settings.mail_schedule_on else "off"
        typer.echo(IN_PROCESS.format(interval=settings.jobs_interval, schedule=settings.harvest_schedule,
                                     sets=", ".join(settings.harvest_sets) or "no sets", mail=mail))
        return
    found = list_jobs(settings)
    if as_json:
        typer.echo(json.dumps(found))
        return
    if not found:
        typer.echo("no jobs queued, running or failed")
    for job in found:
        typer.echo(f"{job['id']:>8}  {job['task']:<14} {job['status']:<7} attempts {job['attempts']}  "
                   f"{job['scheduled_at'] or ''}".rstrip())


@jobs_app.command("run")
def run(task: str = typer.Argument(..., help="harvest, embed, recommend, mail or purge.")) -> None:
    """Run a job now: queued for a worker on PostgreSQL, done here on SQLite."""
    from dailypapers.jobs import uses_queue, work
    from dailypapers.jobs.queue import TASKS, defer

    settings = settings_or_fail()
    if task not in TASKS:
        fail(f"no job called {task!r}: use one of {', '.join(TASKS)}")
    engine = open_store()
    if uses_queue(engine):
        job = defer(settings, task)
        typer.echo(f"queued job {job}" if job else f"a {task} job is queued already")
        return
    done = {"harvest": lambda: work.harvest(engine, settings),
            "embed": lambda: (work.upkeep(engine), work.embed_new(engine, settings))[1],
            "recommend": lambda: work.refresh_recommendations(engine),
            "mail": lambda: work.send_mail(engine, settings), "purge": lambda: work.purge(engine)}[task]()
    typer.echo(f"{task} done: {done if isinstance(done, int) else len(done)}")
