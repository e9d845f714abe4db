"""Settings from DAILYPAPERS_* environment variables, built by a factory so each test gets its own."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


class Settings(BaseSettings):
    """Every setting, with its environment variable DAILYPAPERS_<NAME> (documented in README.md)."""

    model_config = SettingsConfigDict(env_prefix="DAILYPAPERS_", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("dailypapers")),
        description="Where the SQLite database, the search indexes (on PostgreSQL: this machine's full-text "
                    "index) and caches live.",
    )
    database_url: str | None = Field(
        default=None, repr=False,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/dailypapers.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    oai_base_url: str = Field("https://oaipmh.arxiv.org/oai", description="arXiv OAI-PMH endpoint.")
    arxiv_api_url: str = Field("https://export.arxiv.org/api/query", description="arXiv API endpoint.")
    request_delay: float = Field(3.0, ge=0, description="Seconds to pause between requests to arXiv.")
    feature_categories: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Operator rule: put every newly ingested paper in these categories (comma-separated, "
        "e.g. 'cs.CL,cs.LG' or 'cs') on the daily feed of its publication day. Off when empty.",
    )
    embedding_model: str | None = Field(
        None, description="Sentence-embedding model: a local path or name; default the bundled all-MiniLM-L6-v2."
    )
    embedding_runtime: str = Field("onnx", description="onnx (int8, fast on CPU), torch (sentence-transformers), "
                                   "or off (search by words only).")
    embedding_device: str = Field("cpu", description="cpu, or cuda where there is a GPU.")
    base_url: str | None = Field(None, description="The site's public URL, for links in mail and feeds "
                                 "(e.g. https://papers.example.org); default: the request's host, once checked "
                                 "against allowed_hosts. Required by `serve` when mail is on.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names the site answers to (comma-separated); any other Host "
        "header gets a 400. Default: the base URL's host, localhost, 127.0.0.1 and ::1.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Addresses or networks (comma-separated, e.g. 10.0.0.0/8) of the "
        "reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed. Default: none.")
    smtp_url: str | None = Field(None, repr=False,
                                 description="smtp://user:password@host:587 (STARTTLS) or smtps://host:465.")
    mail_from: str = Field("dailypapers <noreply@localhost>", description="The From address of mail.")
    batch_size: int = Field(1000, ge=1, le=100_000, description="Papers per ingest transaction.")
    mail_schedule: bool | None = Field(
        None, description="on: `dailypapers serve` sends digests and alerts from a background thread (every "
        "worker may; the send log keeps each message exactly-once). off: send from cron instead. Default: on "
        "when DAILYPAPERS_SMTP_URL is set.")
    mail_send_time: str = Field("06:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                description="UTC time (HH:MM) from which the scheduler sends each day: the "
                                "daily digest of the day before, the weekly one of the week before, alerts.")
    mail_check_interval: float = Field(300.0, gt=0, description="Seconds between the scheduler's checks.")
    smtp_retries: int = Field(3, ge=0, le=10, description="Retries of a message the SMTP server deferred "
                              "(4xx) or a dropped connection, with exponential backoff.")
    smtp_retry_delay: float = Field(2.0, ge=0, description="Seconds before the first retry; doubled each time.")

    harvest_sets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="OAI-PMH sets that the jobs harvest from arXiv by themselves "
        "(comma-separated, e.g. 'cs' or 'cs,physics:hep-th'); their new papers go on the daily feed. "
        "Off when empty.")
    harvest_schedule: str = Field(
        "03:00", description="When the harvest runs: a UTC time (HH:MM) once a day, or an interval like "
        "'every 6h', 'every 30m', 'every 20s'.")
    harvest_days: int = Field(1, ge=0, le=3650, description="The first harvest of a set starts this many "
                              "days back; later ones start where the last complete harvest did.")
    jobs_interval: float = Field(60.0, gt=0, le=86400, description="Seconds between the jobs' rounds of "
                                 "embedding new papers and index upkeep (a submission wakes them at once).")
    embed_batch_size: int = Field(64, ge=1, le=4096, description="Papers per model call and transaction "
                                  "when the jobs embed.")
    worker_heartbeat: float = Field(10.0, gt=0, le=3600, description="PostgreSQL: seconds between a "
                                    "worker's heartbeats; a job whose worker missed three is run again.")

    @field_validator("feature_categories", "allowed_hosts", "trusted_proxies", "harvest_sets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("harvest_sets")
    @classmethod
    def _sets(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z.-]*(:[A-Za-z][A-Za-z.-]*)*", entry):
                raise ValueError(f"{entry!r} is not an OAI-PMH set (like cs, math or physics:hep-th)")
        return value

    @field_validator("harvest_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from dailypapers.jobs.timing import cron

        cron(value)  # raises ValueError with the accepted forms
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError("must be an absolute http:// or https:// URL, like https://papers.example.org")
        return value.rstrip("/") if value else None

    @field_validator("allowed_hosts")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [host.lower().strip("[]") for host in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (like 10.0.0.0/8)") from None
        return value

    @property
    def hosts(self) -> set[str]:
        """The Host names answered (lower-case, IPv6 without brackets)."""
        if self.allowed_hosts:
            return set(self.allowed_hosts)
        base = {urlsplit(self.base_url).hostname} if self.base_url else set()
        return base | {"localhost", "127.0.0.1", "::1"}

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dailypapers.db'}"

    @property
    def mail_schedule_on(self) -> bool:
        return bool(self.smtp_url) if self.mail_schedule is None else self.mail_schedule


def hide_password(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{netloc[0].partition(':')[0]}:***@{netloc[2]}"))


def get_settings(**overrides: object) -> Settings:
    """Read the environment now (never at import time); keyword overrides win."""
    return Settings(**overrides)
