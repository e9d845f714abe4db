"""The tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL (migrations build from it).

A paper row is self-contained: authors and version history are JSON on the row, categories a
space-separated string (primary first), so an ingest writes one row per paper.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")

organizations = Table(
    "organizations",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("fullname", String(300)),
    Column("avatar", String(2000)),
)

users = Table(
    "users",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("fullname", String(300)),
    Column("avatar_url", String(2000)),
    Column("created_at", DateTime, nullable=False),
)

papers = Table(
    "papers",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("authors", Json, nullable=False),  # [{"name": ..., "affiliations": [...]}], in order
    Column("num_authors", Integer, nullable=False),
    Column("categories", String(1000), nullable=False),
    Column("published_at", DateTime, index=True),
    Column("updated_at", DateTime),
    Column("versions", Json, nullable=False),  # [{"version": 1, "submitted_at": ..., "title"?, "summary"?}]
    Column("doi", String(500)),
    Column("journal_ref", String(1000)),
    Column("comments", Text),
    Column("report_no", String(500)),
    Column("license", String(500)),
    Column("submitter", String(300)),
    Column("github_repo", String(2000)),
    Column("project_page", String(2000)),
    Column("organization_pk", Integer, ForeignKey("organizations.pk"), index=True),
    Column("upvotes", Integer, nullable=False),  # shown: the source's count plus local votes
    Column("source_upvotes", Integer, nullable=False),  # the count the source last reported
    Column("submitted_on_daily_at", DateTime, index=True),
    Column("submitted_by_pk", Integer, ForeignKey("users.pk")),
    Column("source", String(40), nullable=False),
    Column("hidden", Boolean, nullable=False),
    Column("ingested_at", DateTime, nullable=False),
    Column("changed_at", DateTime, nullable=False),  # the start of the ingest run that last wrote it
)

Index("ix_papers_daily_feed", papers.c.hidden, papers.c.submitted_on_daily_at)

# Columns an ingest compares to decide inserted / updated / unchanged.
CONTENT_COLUMNS = tuple(
    c.name for c in papers.columns
    if c.name not in {"pk", "id", "ingested_at", "changed_at", "hidden", "upvotes", "source_upvotes"}
)


# --- semantic search: one embedding per paper (of the model that made it; see search/vectors.py) ---

from pgvector.sqlalchemy import Vector  # noqa: E402
from sqlalchemy import BigInteger, LargeBinary  # noqa: E402

EMBEDDING_DIM = 384
# SQLite: the float32 bytes; PostgreSQL: a pgvector vector(384) with an HNSW (cosine) index.
VectorColumn = LargeBinary().with_variant(Vector(EMBEDDING_DIM), "postgresql")

paper_embeddings = Table(
    "paper_embeddings",
    metadata,
    Column("paper_pk", Integer, ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
    Column("model", String(200), nullable=False),  # the embedder's name
    Column("vector", VectorColumn, nullable=False),  # L2-normalized
    # Write order: larger than every row committed before this one. A vector index records the
    # largest it covers, and a search reads the few rows above it exactly.
    Column("seq", BigInteger, nullable=False, index=True),
)
