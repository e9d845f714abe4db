"""Email from a terminal or cron: `subscribe`, `digest send`, `alerts send`, `subscriptions`."""

from __future__ import annotations

from datetime import datetime, timezone

import typer

from dailypapers.cli.common import fail, open_store, settings_or_fail

digest_app = typer.Typer(help="Digests of trending papers.", no_args_is_help=True)
alerts_app = typer.Typer(help="Saved-search alerts.", no_args_is_help=True)


def subscribe(
    email: str = typer.Argument(..., help="The address to send to."),
    period: str = typer.Option("daily", help="daily or weekly."),
    query: str | None = typer.Option(None, help="An alert for this search instead of the digest."),
    since: str | None = typer.Option(None, help="Alert: papers published on or after (YYYY-MM-DD)."),
    cat: list[str] = typer.Option([], "--cat", help="Alert: arXiv category (repeatable), e.g. cs.LG or cs."),
    org: str | None = typer.Option(None, help="Alert: organization handle, e.g. facebook."),
    has_code: bool = typer.Option(False, "--has-code", help="Alert: only papers with code."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Skip the confirmation mail: you vouch that the address wants it."
    ),
) -> None:
    """Subscribe an address to the daily or weekly digest, or (--query, --cat, --org, --has-code) an alert.

    A confirmation mail goes out first (double opt-in) unless --confirmed.
    """
    from dailypapers.mail import compose
    from dailypapers.mail import subscriptions as subs
    from dailypapers.mail.smtp import MailError, Permanent, Transient, send_now
    from dailypapers.mail.subscription_spec import SubscriptionError, check_spec, describe

    settings = settings_or_fail()
    is_alert = bool(query or since or cat or org or has_code)
    try:
        spec = check_spec(
            email,
            kind="alert" if is_alert else "digest",
            period=period,
            query=query,
            since=since,
            categories=cat,
            organization=org,
            has_code=has_code or None,
        )
    except SubscriptionError as exc:
        fail(f"{'--' + exc.field if exc.field not in ('email',) else 'EMAIL'}: {exc.message}")
    if not confirmed and not (settings.smtp_url and settings.base_url):
        fail("a confirmation mail needs DAILYPAPERS_SMTP_URL and DAILYPAPERS_BASE_URL (or use --confirmed)")
    engine = open_store()
    try:
        outcome = subs.subscribe(engine, spec, confirmed=confirmed)
    except SubscriptionError as exc:
        fail(exc.message)
    sub = outcome.subscription
    if outcome.action == "confirmed":
        typer.echo(f"subscribed {sub['email']} to the {describe(sub)} (#{sub['pk']})")
        return
    base = settings.base_url.rstrip("/")
    if outcome.action == "confirm":
        subject, text = compose.confirmation(sub, f"{base}/subscriptions/confirm/{outcome.token}", base)
    else:
        subject, text = compose.already_subscribed(sub, f"{base}/subscriptions/manage/{outcome.token}", base)
    try:
        send_now(settings, compose.build_message(settings.mail_from, spec.email, subject, text), spec.email)
    except (MailError, Transient, Permanent) as exc:
        subs.forget_request(engine, sub["pk"])
        fail(f"could not send the confirmation mail to {spec.email}: {exc}")
    if outcome.action == "confirm":
        typer.echo(f"confirmation mail sent to {sub['email']} for the {describe(sub)} (#{sub['pk']})")
    else:
        typer.echo(f"{sub['email']} already gets the {describe(sub)}: a link to manage it was mailed")


def unsubscribe(email: str = typer.Argument(..., help="The address.")) -> None:
    """Unsubscribe every subscription of an address (e.g. after a complaint)."""
    from dailypapers.mail import subscriptions as subs

    count = subs.unsubscribe_address(open_store(), email)
    typer.echo(f"unsubscribed {count} subscription{'' if count == 1 else 's'} of {email.strip().lower()}")


def subscriptions() -> None:
    """List subscriptions, and any message whose delivery is in doubt after a crash."""
    from dailypapers.mail import subscriptions as subs
    from dailypapers.mail.send_log import in_doubt
    from dailypapers.mail.subscription_spec import describe

    engine = open_store()
    rows = subs.all_subscriptions(engine)
    for s in rows:
        typer.echo(f"#{s['pk']:<5} {s['status']:<12} {s['email']:<40} {describe(s)}")
    typer.echo(f"{len(rows)} subscription{'' if len(rows) == 1 else 's'}")
    for row in in_doubt(engine):
        typer.echo(
            f"in doubt: #{row['pk']} {row['period_key']} to {row['email']} (handed to the server "
            f"{row['handed_at']:%Y-%m-%d %H:%M} UTC; delete the send_log row to send it again)"
        )


def _report(report) -> None:  # noqa: ANN001
    for line in report.lines():
        typer.echo(line)
    if report.problems:
        raise SystemExit(3)


def _now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now {value!r}: expected a UTC time like 2025-10-11T06:00")
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


@digest_app.command("send")
def digest_send(
    period: str = typer.Option("daily", help="daily or weekly."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would go to whom; send and record nothing."
    ),
    now: str | None = typer.Option(
        None, help="Act as if it were this UTC time (YYYY-MM-DDTHH:MM).", hidden=True
    ),
) -> None:
    """Send the digest of the latest ended day (or week) to every subscriber who has not had it."""
    from dailypapers.mail.digests import send_digests
    from dailypapers.mail.smtp import MailError

    if period not in ("daily", "weekly"):
        fail(f"--period {period!r}: use daily or weekly")
    settings = settings_or_fail()
    engine = open_store()
    try:
        _report(send_digests(engine, settings, period, now=_now(now), dry_run=dry_run))
    except MailError as exc:
        fail(str(exc))


@alerts_app.command("send")
def alerts_send(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would go to whom; send and record nothing."
    ),
    now: str | None = typer.Option(
        None, help="Act as if it were this UTC time (YYYY-MM-DDTHH:MM).", hidden=True
    ),
) -> None:
    """Send each saved-search alert the new papers that match it."""
    from dailypapers.mail.alerts import send_alerts
    from dailypapers.mail.smtp import MailError

    settings = settings_or_fail()
    engine = open_store()
    try:
        _report(send_alerts(engine, settings, now=_now(now), dry_run=dry_run))
    except MailError as exc:
        fail(str(exc))
