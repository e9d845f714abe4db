"""Settings from DAILYPAPERS_* environment variables, built by a factory so each test gets its own."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


class Settings(BaseSettings):
    """Every setting, with its environment variable DAILYPAPERS_<NAME> (documented in README.md)."""

    model_config = SettingsConfigDict(env_prefix="DAILYPAPERS_", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("dailypapers")),
        description="Where the SQLite database, the vector index and caches live.",
    )
    database_url: str | None = Field(
        default=None,
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
                                 "(e.g. https://papers.example.org); default: the URL of each request.")
    smtp_url: str | None = Field(None, description="smtp://user:password@host:587 (STARTTLS) or smtps://host:465.")
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

    @field_validator("feature_categories", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dailypapers.db'}"

    @property
    def mail_schedule_on(self) -> bool:
        return bool(self.smtp_url) if self.mail_schedule is None else self.mail_schedule


def get_settings(**overrides: object) -> Settings:
    """Read the environment now (never at import time); keyword overrides win."""
    return Settings(**overrides)
