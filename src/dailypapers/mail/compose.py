"""Composing mail: Jinja2 templates -> a multipart/alternative message (plain text + HTML, UTF-8).

Digests and alerts carry the headers bulk mail needs (RFC 2369, RFC 8058): ``List-Unsubscribe`` with
the subscription's one-click URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` and ``List-Id``,
besides From, To, Subject, Date and a Message-ID fixed when the send is claimed (see send_log.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from dailypapers import tex
from dailypapers.mail.subscription_spec import describe, search_label

TEMPLATES = Path(__file__).with_name("templates")
EXCERPT_CHARS = 280

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of an abstract, cut at a word, one line."""
    words = " ".join((text or "").split())
    if len(words) <= limit:
        return words
    cut = words[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "…"


_env.filters["excerpt"] = excerpt


@dataclass(frozen=True)
class DigestPeriod:
    """A day or an ISO week of the feed."""

    kind: str  # daily | weekly
    start: date
    end: date  # exclusive

    @classmethod
    def of(cls, kind: str, day: date) -> DigestPeriod:
        if kind == "daily":
            return cls(kind, day, day + timedelta(days=1))
        start = day - timedelta(days=day.weekday())
        return cls(kind, start, start + timedelta(days=7))

    @property
    def key(self) -> str:
        if self.kind == "daily":
            return f"daily:{self.start.isoformat()}"
        year, week, _ = self.start.isocalendar()
        return f"weekly:{year}-W{week:02d}"

    @property
    def label(self) -> str:
        """ "Fri Oct 10" or "the week of Oct 6–12" (a week over two months: "Sep 29–Oct 5")."""
        if self.kind == "daily":
            return f"{self.start:%a %b} {self.start.day}"
        last = self.end - timedelta(days=1)
        tail = f"{last.day}" if last.month == self.start.month else f"{last:%b} {last.day}"
        return f"the week of {self.start:%b} {self.start.day}–{tail}"

    @property
    def long_label(self) -> str:
        if self.kind == "daily":
            return f"{self.start:%A, %B} {self.start.day}, {self.start.year}"
        year, week, _ = self.start.isocalendar()
        return f"week {week}, {year} ({self.label.removeprefix('the week of ')})"

    @property
    def path(self) -> str:
        if self.kind == "daily":
            return f"/papers/date/{self.start.isoformat()}"
        return f"/papers/week/{self.key.removeprefix('weekly:')}"


@dataclass(frozen=True)
class Links:
    base_url: str
    manage: str
    unsubscribe: str


def _paper_view(base_url: str, p: dict) -> dict:
    organization = p.get("organization_fullname") or p.get("organization_name")
    meta = [f"{p['num_authors']} author" + ("" if p["num_authors"] == 1 else "s")] if p["num_authors"] else []
    meta += [organization] if organization else []
    meta.append(f"▲ {p['upvotes']}")
    return {
        "meta": meta,
        "id": p["id"],
        "title": " ".join(tex.to_text(p["title"]).split()),
        "url": f"{base_url}/papers/{p['id']}",
        "num_authors": p["num_authors"],
        "upvotes": p["upvotes"],
        "organization": p.get("organization_fullname") or p.get("organization_name"),
        "excerpt": excerpt(tex.to_text(p.get("summary"))),
        "github_repo": p.get("github_repo"),
    }


def _papers_word(n: int) -> str:
    return f"{n:,} paper" + ("" if n == 1 else "s")


def digest_subject(period: DigestPeriod, shown: int, total: int) -> str:
    count = _papers_word(total) if shown >= total else f"top {shown} of {_papers_word(total)}"
    return f"Trending papers for {period.label}: {count}"


def alert_subject(sub: dict, shown: int, total: int) -> str:
    count = (
        f"{total:,}"
        if shown >= total
        else f"{shown} of {total:,}+"
        if total >= 100
        else f"{shown} of {total:,}"
    )
    noun = "new paper" if total == 1 else "new papers"
    return f"{count} {noun} for {search_label(sub)}"


def search_url(base_url: str, sub: dict) -> str:
    f = sub.get("filters") or {}
    params: list[tuple[str, str]] = [("q", sub.get("query") or ""), ("sort", "newest")]
    params += [("cat", c) for c in f.get("categories") or ()]
    if f.get("organization"):
        params.append(("org", f["organization"]))
    if f.get("has_code"):
        params.append(("has_code", "1"))
    if f.get("since"):
        params.append(("since", f["since"]))
    return f"{base_url}/search?{urlencode(params)}"


def render_digest(
    sub: dict, period: DigestPeriod, papers: list[dict], total: int, links: Links
) -> tuple[str, str, str]:
    """(subject, text, html) of a digest."""
    context = {
        "sub": sub,
        "what": describe(sub),
        "period": period,
        "total": total,
        "links": links,
        "papers": [_paper_view(links.base_url, p) for p in papers],
        "more_url": links.base_url + period.path,
    }
    subject = digest_subject(period, len(papers), total)
    return (
        subject,
        _env.get_template("digest.txt").render(context, subject=subject),
        _env.get_template("digest.html").render(context, subject=subject),
    )


def foryou_subject(shown: int) -> str:
    return f"Picked for you: {_papers_word(shown)}"


def render_foryou(sub: dict, papers: list[dict], reasons: dict[str, str],
                  links: Links) -> tuple[str, str, str]:
    """(subject, text, html) of a For-you digest: the reader's recommendations, each with its reason."""
    views = [_paper_view(links.base_url, p) for p in papers]
    for view in views:
        if reasons.get(view["id"]):
            view["meta"].append(reasons[view["id"]])
    context = {"sub": sub, "what": describe(sub), "links": links, "papers": views,
               "more_url": links.base_url + "/for-you"}
    subject = foryou_subject(len(papers))
    return (
        subject,
        _env.get_template("foryou.txt").render(context, subject=subject),
        _env.get_template("foryou.html").render(context, subject=subject),
    )


def render_alert(sub: dict, papers: list[dict], total: int, links: Links) -> tuple[str, str, str]:
    """(subject, text, html) of a saved-search alert."""
    context = {
        "sub": sub,
        "what": describe(sub),
        "label": search_label(sub),
        "total": total,
        "links": links,
        "papers": [_paper_view(links.base_url, p) for p in papers],
        "more_url": search_url(links.base_url, sub),
    }
    subject = alert_subject(sub, len(papers), total)
    return (
        subject,
        _env.get_template("alert.txt").render(context, subject=subject),
        _env.get_template("alert.html").render(context, subject=subject),
    )


def render_text(template: str, **context: object) -> str:
    return _env.get_template(template).render(context)


def confirmation(sub: dict, confirm_url: str, base_url: str) -> tuple[str, str]:
    """(subject, text) of the double opt-in mail."""
    subject = f"Confirm your {describe(sub)} from dailypapers"
    return subject, render_text(
        "confirm.txt", sub=sub, what=describe(sub), confirm_url=confirm_url, base_url=base_url
    )


def already_subscribed(sub: dict, manage_url: str, base_url: str) -> tuple[str, str]:
    subject = f"You already get the {describe(sub)}"
    return subject, render_text(
        "already.txt", sub=sub, what=describe(sub), manage_url=manage_url, base_url=base_url
    )


def mail_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def new_message_id(mail_from: str) -> str:
    return make_msgid(domain=mail_domain(mail_from))


def build_message(
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    *,
    message_id: str | None = None,
    unsubscribe_url: str | None = None,
    list_id: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A message ready for SMTP: UTF-8 parts (quoted-printable), CRLF line ends, no header injection.

    ``to`` must be a checked address: the email package refuses a header with a line break anyway.
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = mail_from
    message["To"] = Address(addr_spec=to) if to.isascii() else to
    message["Subject"] = subject
    message["Date"] = _date_header(now)
    message["Message-ID"] = message_id or new_message_id(mail_from)
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Precedence"] = "bulk"
        message["Auto-Submitted"] = "auto-generated"
    if list_id:
        message["List-Id"] = list_id
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def _date_header(now: datetime | None) -> str:
    if now is None:
        return formatdate(usegmt=True)
    if now.tzinfo is None:  # naive datetimes are UTC everywhere in the store
        now = now.replace(tzinfo=timezone.utc)
    return format_datetime(now.astimezone(timezone.utc).replace(microsecond=0), usegmt=True)


def list_id(kind: str, base_url: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    host = re.sub(r"[^A-Za-z0-9.-]", "", host) or "localhost"
    name = {"digest": "Trending papers digest", "foryou": "Papers picked for you"}.get(
        kind, "Saved-search alerts")
    return f"{name} <{kind}.{host}>"
