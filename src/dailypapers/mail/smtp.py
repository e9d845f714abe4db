"""Talking to the SMTP server (DAILYPAPERS_SMTP_URL): connecting, a run's session with its retry
policy, and single messages sent on their own connection (a confirmation, a password reset)."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlparse

from dailypapers.config import Settings, hide_password

log = logging.getLogger("dailypapers.mail")


class MailError(RuntimeError):
    """Sending cannot go on (no SMTP URL, server unreachable, sender refused): one line for the operator."""


class Transient(Exception):
    """The server deferred the message (4xx) or the connection dropped before the message was sent."""


class Permanent(Exception):
    """The server refused the recipient or the message for good (5xx)."""


class InDoubt(Exception):
    """The connection was lost after the whole message was sent: the server may have accepted it."""


def connect(url: str, timeout: float = 30) -> smtplib.SMTP:
    """smtp://user:pass@host:587 (STARTTLS when the server offers it), smtps://host:465 (TLS)."""
    parts = urlparse(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"DAILYPAPERS_SMTP_URL must look like smtp://user:password@host:587, not {hide_password(url)!r}")
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


class Mailer:
    """One SMTP connection, opened on the first message and reused for the rest of a run.

    ``send`` retries a deferral (4xx) or a dropped connection ``retries`` times, waiting
    ``retry_delay`` seconds and doubling; it raises Permanent for a 5xx, Transient when the retries
    are used up, InDoubt when the outcome cannot be known, MailError when no mail can go at all.
    """

    def __init__(
        self,
        url: str,
        mail_from: str,
        *,
        retries: int = 3,
        retry_delay: float = 2.0,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.sender = parseaddr(mail_from)[1] or mail_from
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.sleep = sleep
        self.connections = 0  # opened so far (tests check that a run reuses one)
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> Mailer:
        if not settings.smtp_url:
            raise MailError(
                "DAILYPAPERS_SMTP_URL is not set: set it to smtp://user:password@host:587 "
                "(or use --dry-run to see what would be sent)"
            )
        options = {"retries": settings.smtp_retries, "retry_delay": settings.smtp_retry_delay} | overrides
        return cls(settings.smtp_url, settings.mail_from, **options)  # type: ignore[arg-type]

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _server(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = connect(self.url, timeout=self.timeout)
            except ValueError as exc:
                raise MailError(str(exc)) from None
            except smtplib.SMTPAuthenticationError as exc:
                raise MailError(f"the SMTP server refused the user name or password: {_reply(exc)}") from None
            except (smtplib.SMTPException, OSError) as exc:
                raise Transient(f"cannot reach the SMTP server: {exc}") from None
            self.connections += 1
        return self._smtp

    def send(self, message: EmailMessage, to: str) -> None:
        attempt = 0
        while True:
            try:
                self._transmit(message, to)
                return
            except Transient as exc:
                if attempt >= self.retries:
                    if str(exc).startswith("cannot reach"):
                        raise MailError(f"{exc} (DAILYPAPERS_SMTP_URL)") from None
                    raise
                delay = self.retry_delay * 2**attempt
                attempt += 1
                log.info("deferred (%s); retry %d of %d in %.1f s", exc, attempt, self.retries, delay)
                self.sleep(delay)

    def _refused(self, stage: str, code: int, text: bytes | str) -> Exception:
        """Classify a reply and leave the connection ready for the next message."""
        reply = f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}".strip()
        if code == 421 or code < 0:
            self._drop()
        else:
            try:
                self._smtp.rset()  # type: ignore[union-attr]
            except (smtplib.SMTPException, OSError):
                self._drop()
        if 400 <= code < 500 or code < 0:
            return Transient(f"{stage}: {reply}")
        if stage == "MAIL FROM":
            return MailError(
                f"the SMTP server refused the sender {self.sender}: {reply} (DAILYPAPERS_MAIL_FROM)"
            )
        return Permanent(f"{stage}: {reply}")

    def _transmit(self, message: EmailMessage, to: str) -> None:
        server = self._server()
        international = not (to.isascii() and self.sender.isascii())
        options: list[str] = []
        if international:
            if not server.has_extn("smtputf8"):
                raise Permanent(f"the SMTP server does not accept international addresses like {to}")
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        data = message.as_bytes(policy=SMTP.clone(utf8=international))
        try:
            code, text = server.mail(self.sender, options)
            if code != 250:
                raise self._refused("MAIL FROM", code, text)
            code, text = server.rcpt(to)
            if code not in (250, 251):
                raise self._refused("RCPT TO", code, text)
            server.putcmd("data")
            code, text = server.getreply()
            if code != 354:
                raise self._refused("DATA", code, text)
            body = re.sub(rb"(?m)^\.", b"..", data)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            server.send(body + b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()  # the message did not get through: safe to send again
            raise Transient(f"connection lost: {exc}") from None
        try:
            code, text = server.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise InDoubt(f"connection lost after the message was sent: {exc}") from None
        if code != 250:
            raise self._refused("message", code, text)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"{exc.smtp_code} {text}"


def _not_sent(message: EmailMessage) -> None:
    # Recipient and subject only: the body holds live links (a reset, a confirmation).
    log.warning("no DAILYPAPERS_SMTP_URL: not sent to %s: %s", message["To"], message["Subject"])


def send_now(settings: Settings, message: EmailMessage, to: str) -> bool:
    """Send one transactional message (a confirmation) on its own connection; False without SMTP.

    Raises MailError, Transient or Permanent when it could not go.
    """
    if not settings.smtp_url:
        _not_sent(message)
        return False
    with Mailer.from_settings(
        settings, retries=min(settings.smtp_retries, 1), retry_delay=min(settings.smtp_retry_delay, 1.0)
    ) as mailer:
        mailer.send(message, to)
    return True


def send_plain(settings: Settings, to: str, subject: str, body: str) -> None:
    """One plain-text message (a password reset) on its own connection, without retries."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost")
    message.set_content(body)
    if not settings.smtp_url:
        _not_sent(message)
        return
    with connect(settings.smtp_url) as server:
        server.send_message(message)
