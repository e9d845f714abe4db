"""arXiv OAI-PMH harvester: ``OaiHarvest`` fetches ``ListRecords`` page after page (following
resumption tokens, honouring ``503 Retry-After``), parses each with oai_records.py, and keeps a
checkpoint so that an interrupted harvest resumes where its committed records end.

Checkpoint contract (the ingest stage): records are consumed from the iterator in batches; after a
batch is committed the consumer calls ``harvest.committed()``, meaning "every record yielded so far
is safely stored". The checkpoint then holds the token that fetches the first page not yet fully
yielded, so a crash re-fetches at most one page and never skips an uncommitted record.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from dailypapers.domain import Sourced
from dailypapers.sources.common import clean_text, parse_date
from dailypapers.sources.oai_records import FORMATS, HarvestError, oai_error, page_label, parse_page

DEFAULT_BASE_URL = "https://oaipmh.arxiv.org/oai"
MAX_RETRY_AFTER = 600.0  # seconds: never trust a server to park us for longer than this
USER_AGENT = "dailypapers/0.1 (self-hosted Daily Papers; OAI-PMH harvester)"


@dataclass(slots=True)
class _Position:
    """Where the iterator stands: the page being yielded and how far into it."""

    page: int
    token: str | None  # the token that fetched this page (None: the initial request)
    next_token: str | None  # the token for the page after it (None: this is the last page)
    total: int
    yielded: int = 0


def _iso(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _day(value: date | datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, date) else str(value)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved checkpoint, or None when there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise HarvestError(
            f"the checkpoint {path} is unreadable ({exc}): delete it and harvest again"
        ) from exc
    return data


def last_harvest_date(path: Path) -> date | None:
    """The ``from`` date for the next incremental harvest: when the last complete harvest started."""
    data = read_checkpoint(path)
    if not data or not data.get("complete") or not data.get("response_date"):
        return None
    return parse_date(data["response_date"]).date()


class OaiHarvest:
    """Iterate over every record of one ``ListRecords`` list, page after page.

    Yields ``Sourced`` items (where, Paper | Deletion | RecordError). Call ``committed()`` after the
    records yielded so far are stored; with a ``checkpoint`` file an interrupted harvest then resumes
    from the first page not yet fully yielded.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        metadata_prefix: str = "arXiv",
        from_: date | None = None,
        until: date | None = None,
        set_: str | None = None,
        checkpoint: Path | None = None,
        delay: float = 3.0,
        max_retries: int = 5,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 120.0,
    ):
        if metadata_prefix not in FORMATS:
            raise ValueError(f"metadata_prefix must be one of {', '.join(FORMATS)}, not {metadata_prefix!r}")
        self.base_url = base_url
        self.metadata_prefix = metadata_prefix
        self.from_ = from_
        self.until = until
        self.set_ = set_
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.delay = delay
        self.max_retries = max_retries
        self.timeout = timeout
        self._client = client
        self._own_client: httpx.Client | None = None
        self._sleep = sleep

        self.pages_fetched = 0
        self.records_seen = 0
        self.response_date: datetime | None = None  # of the harvest's first response
        self._position: _Position | None = None
        self._uncommitted = 0  # records yielded since the last committed()
        self._last_request: float | None = None
        self._start_token: str | None = None
        self._start_page = 1

        saved = read_checkpoint(self.checkpoint) if self.checkpoint else None
        if saved and not saved.get("complete"):
            if saved.get("base_url") != self.base_url or saved.get("arguments") != self.arguments:
                raise HarvestError(
                    f"the checkpoint {self.checkpoint} belongs to an unfinished harvest of "
                    f"{_describe(saved.get('base_url'), saved.get('arguments'))}, not of "
                    f"{_describe(self.base_url, self.arguments)}: run that harvest again to finish it, "
                    "or delete the checkpoint to start this one"
                )
            self._start_token = saved.get("resumption_token") or None
            self._start_page = int(saved.get("page") or 1)
            if saved.get("response_date"):
                self.response_date = parse_date(saved["response_date"])

    # The request arguments a checkpoint is bound to.
    @property
    def arguments(self) -> dict[str, str | None]:
        return {
            "verb": "ListRecords",
            "metadataPrefix": self.metadata_prefix,
            "from": _day(self.from_),
            "until": _day(self.until),
            "set": self.set_,
        }

    @property
    def resuming(self) -> bool:
        """True when this harvest continues an interrupted one from its checkpoint."""
        return self._start_token is not None

    def __iter__(self) -> Iterator[Sourced]:
        token, page_no = self._start_token, self._start_page
        try:
            while True:
                if token is None:
                    params = {k: v for k, v in self.arguments.items() if v is not None}
                else:
                    params = {"verb": "ListRecords", "resumptionToken": token}
                content, url = self._fetch(params, page_no)
                self.pages_fetched += 1
                try:
                    page = parse_page(content, page=page_no, url=url)
                except HarvestError as exc:
                    if exc.code == "badResumptionToken":
                        raise self._token_rejected(exc, page_no, url) from exc
                    raise
                if self.response_date is None:
                    self.response_date = page.response_date
                self._position = _Position(page_no, token, page.token, len(page.records))
                for item in page.records:
                    self._position.yielded += 1
                    self._uncommitted += 1
                    self.records_seen += 1
                    yield item
                if page.token is None:
                    break
                token, page_no = page.token, page_no + 1
        finally:
            self.close()
        if self._uncommitted == 0:  # nothing left to commit: the list is done
            self._save_position()

    def committed(self) -> None:
        """Everything yielded so far is stored: move the checkpoint past the pages fully yielded."""
        self._uncommitted = 0
        self._save_position()

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None

    def __enter__(self) -> OaiHarvest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checkpoint ---------------------------------------------------------------------------------

    def _save_position(self) -> None:
        pos = self._position
        if self.checkpoint is None or pos is None:
            return
        if pos.yielded < pos.total:  # this page is not fully yielded: fetch it again
            self._write_checkpoint(pos.token, pos.page, complete=False)
        elif pos.next_token is None:
            self._write_checkpoint(None, pos.page, complete=True)
        else:
            self._write_checkpoint(pos.next_token, pos.page + 1, complete=False)

    def _write_checkpoint(self, token: str | None, page: int, *, complete: bool) -> None:
        assert self.checkpoint is not None
        data = {
            "base_url": self.base_url,
            "arguments": self.arguments,
            "resumption_token": token,
            "page": page,
            "complete": complete,
            "response_date": _iso(self.response_date),
            "saved_at": _iso(datetime.now(timezone.utc)),
        }
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint)

    def _token_rejected(self, exc: HarvestError, page_no: int, url: str) -> HarvestError:
        if self.checkpoint is None:
            return exc
        advice = (
            f"the resumption token was rejected (expired?): delete the checkpoint {self.checkpoint} "
            "and harvest again"
        )
        return oai_error("badResumptionToken", exc.server_text or "", page_no, url, advice)

    # -- HTTP ---------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is not None:
            return self._client
        if self._own_client is None:
            self._own_client = httpx.Client(
                timeout=self.timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
            )
        return self._own_client

    def _polite_pause(self) -> None:
        if self._last_request is None or self.delay <= 0:
            return
        wait = self.delay - (time.monotonic() - self._last_request)
        if wait > 0:
            self._sleep(wait)

    def _fetch(self, params: dict[str, str], page_no: int) -> tuple[bytes, str]:
        """GET one page, repeating it on 503/5xx/connection errors; the body and the URL asked."""
        self._polite_pause()
        retries = 0
        while True:
            request = self.client.build_request("GET", self.base_url, params=params)
            url = str(request.url)
            try:
                response = self.client.send(request)
                content = response.content
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
                wait = self._backoff(retries)
            else:
                status = response.status_code
                if status == 200:
                    self._last_request = time.monotonic()
                    return content, url
                after = _retry_after(response.headers.get("Retry-After"))
                if status in (429, 503) and after is not None:
                    failure = f"HTTP {status} (Retry-After: {response.headers['Retry-After']})"
                    wait = min(after, MAX_RETRY_AFTER)
                elif status >= 500 or status == 429:
                    failure = f"HTTP {status}"
                    wait = self._backoff(retries)
                else:
                    body = clean_text(response.text[:200]) or "empty body"
                    raise HarvestError(
                        f"{page_label(page_no, url)}: HTTP {status} ({body}): "
                        "check the base URL and the harvest arguments",
                        page=page_no,
                        url=url,
                    )
            if retries >= self.max_retries:
                raise HarvestError(
                    f"{page_label(page_no, url)}: gave up after {retries} "
                    f"{'retry' if retries == 1 else 'retries'}, last: {failure}: "
                    "the server is unavailable, harvest again later (the checkpoint keeps the progress)",
                    page=page_no,
                    url=url,
                )
            retries += 1
            self._sleep(wait)

    @staticmethod
    def _backoff(retries: int) -> float:
        return min(300.0, 5.0 * 2**retries)


def _describe(base_url: Any, arguments: Any) -> str:
    args = arguments if isinstance(arguments, dict) else {}
    shown = " ".join(f"{k}={v}" for k, v in args.items() if v is not None and k != "verb")
    return f"{base_url} {shown}".strip()
