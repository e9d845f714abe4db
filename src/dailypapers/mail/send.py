"""Sending one message over SMTP (DAILYPAPERS_SMTP_URL); without it, the message goes to the log."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlparse

from dailypapers.config import Settings

log = logging.getLogger("dailypapers.mail")


def connect(url: str, timeout: float = 30) -> smtplib.SMTP:
    """smtp://user:pass@host:587 (STARTTLS when the server offers it), smtps://host:465 (TLS)."""
    parts = urlparse(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"DAILYPAPERS_SMTP_URL must look like smtp://user:password@host:587, not {url!r}")
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(
            parts.hostname, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        server = smtplib.SMTP(parts.hostname, parts.port or 587, timeout=timeout)
        server.ehlo()
        if server.has_extn("starttls"):
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
    if parts.username:
        server.login(unquote(parts.username), unquote(parts.password or ""))
    return server


def send_plain(settings: Settings, to: str, subject: str, body: str) -> None:
    """One plain-text message (a password reset) on its own connection; digests use deliver.py."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost")
    message.set_content(body)
    if not settings.smtp_url:
        log.warning("no DAILYPAPERS_SMTP_URL: this message was not sent:\n%s", message)
        return
    with connect(settings.smtp_url) as server:
        server.send_message(message)
