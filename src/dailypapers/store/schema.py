"""The tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL (migrations build from it).

A paper row is self-contained: authors and version history are JSON on the row, categories a
space-separated string (primary first), so an ingest writes one row per paper.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
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
    # Accounts (migration 0003). Users imported from a source (HF submitters) have no email or password.
    Column("email", String(320)),  # lower-cased; unique through ix_users_email
    Column("password_hash", String(300)),  # argon2id, with its parameters
    Column("is_admin", Boolean, nullable=False, default=False, server_default=false()),
    Column("api_token_hash", String(64)),  # SHA-256 hex of the personal API token; unique index
    Column("email_verified_at", DateTime),  # when the owner opened the verification link (0006)
    # Raised in the same transaction as every change of the reader's signals (saves, votes, follows,
    # "not interested"): a cached recommendation list made at an older version is stale (0008).
    Column("signals_version", Integer, nullable=False, server_default="0"),
)
# Unique indexes rather than constraints: SQLite can add those to an existing table without rebuilding it.
Index("ix_users_email", users.c.email, unique=True)
Index("ix_users_api_token_hash", users.c.api_token_hash, unique=True)

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
    Column("keywords", Json),  # ["reinforcement learning", ...]: a source's keywords, or none (0013)
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
    # Raised whenever title, summary or authors change: SQLite's full-text index (search/fulltext.py)
    # indexes every paper above the largest seq it holds.
    Column("text_seq", BigInteger, nullable=False, server_default="0", index=True),
)

Index("ix_papers_daily_feed", papers.c.hidden, papers.c.submitted_on_daily_at)

# Columns an ingest compares to decide inserted / updated / unchanged.
CONTENT_COLUMNS = tuple(
    c.name for c in papers.columns
    if c.name not in {"pk", "id", "ingested_at", "changed_at", "hidden", "upvotes", "source_upvotes", "text_seq"}
)


# --- semantic search: one embedding per paper (of the model that made it; see search/vectors.py) ---

import numpy as np  # noqa: E402
from pgvector.sqlalchemy import Vector  # noqa: E402
from sqlalchemy import LargeBinary, func  # noqa: E402

EMBEDDING_DIM = 384


class BinaryVector(Vector):
    """pgvector's vector, read in its binary form (``vector_send``: two int16, then big-endian
    float32) as a numpy array: parsing the text form cost 140 ms of a 390 ms recommendation at
    100k papers."""

    cache_ok = True

    def column_expression(self, column):  # noqa: ANN001, ANN201
        return func.vector_send(column, type_=self)

    def result_processor(self, dialect, coltype):  # noqa: ANN001, ANN201, ARG002
        def process(value):  # noqa: ANN001, ANN202
            return None if value is None else np.frombuffer(value, ">f4", offset=4).astype(np.float32)
        return process


# SQLite: the float32 bytes; PostgreSQL: a pgvector vector(384) with an HNSW (cosine) index.
VectorColumn = LargeBinary().with_variant(BinaryVector(EMBEDDING_DIM), "postgresql")

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

# Counters that only grow, one row each (0009): "paper_embeddings.seq" is the last seq handed out, so a
# seq is never given twice, even after the newest embedding is deleted. Advancing one locks its row
# to the end of the writer's transaction, so seqs also become visible in the order they were taken.
counters = Table(
    "counters",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", BigInteger, nullable=False),
)


# --- community: votes, comments, saved papers, sessions, password resets, login attempts (0003) ---

# One row per local vote; papers.upvotes moves by one in the same transaction (see community.py).
# Deleting a user is refused while they have votes: their votes must be taken back (and counted) first.
upvotes = Table(
    "upvotes",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk"), primary_key=True),
    Column("paper_pk", Integer, ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", DateTime, nullable=False),
)

comments = Table(
    "comments",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("paper_pk", Integer, ForeignKey("papers.pk", ondelete="CASCADE"), nullable=False),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("body", Text, nullable=False),  # Markdown as written
    Column("body_html", Text),  # rendered and sanitized once, when written (0006)
    Column("created_at", DateTime, nullable=False),
    Column("edited_at", DateTime),
    Column("hidden", Boolean, nullable=False, default=False, server_default=false()),
)
Index("ix_comments_paper_pk_created_at", comments.c.paper_pk, comments.c.created_at)

# Tokens are stored as their SHA-256 (hex): a copy of the database gives no one a login.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

password_resets = Table(
    "password_resets",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("expires_at", DateTime, nullable=False),
    Column("used_at", DateTime),
)

# Links that prove an account's owner reads its address (0006): sent at sign-up, work once.
email_verifications = Table(
    "email_verifications",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(320), nullable=False),  # the address the link was sent to
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("used_at", DateTime),
)

# Throttling (0006): one row per counted request, by key ("signin:acct:<email>", "comment:user:7", ...);
# a moving window counts the rows of a key newer than its window. Shared by every worker and machine.
throttle_hits = Table(
    "throttle_hits",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("key", String(400), nullable=False),
    Column("at", Float, nullable=False),  # Unix time, seconds
    Column("expires_at", Float, nullable=False, index=True),  # when the purge may delete it
)
Index("ix_throttle_hits_key_at", throttle_hits.c.key, throttle_hits.c.at)


# --- email: subscriptions, their link tokens, and the send log (0004; see mail/ and docs/email.md) ---

from sqlalchemy import Date, UniqueConstraint  # noqa: E402

# A digest (daily or weekly trending papers) or a saved-search alert, for one address.
# status: pending (waiting for the confirmation link) | active | paused | bouncing (a permanent 5xx:
# no more mail until the address confirms again) | unsubscribed.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("email", String(320), nullable=False),  # lower-cased, validated
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="SET NULL"), index=True),
    Column("kind", String(10), nullable=False),  # digest | alert
    Column("period", String(10), nullable=False),  # daily | weekly
    Column("query", String(300)),  # alerts: the search text
    Column("filters", Json, nullable=False),  # alerts: {"since", "categories", "organization", "has_code"}
    Column("signature", String(64), nullable=False),  # SHA-256 of kind, query and filters
    Column("status", String(12), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("confirmed_at", DateTime),
    Column("changed_at", DateTime, nullable=False),
    Column("requested_at", DateTime),  # when a confirmation (or "already subscribed") mail last went out
    Column("alert_after_pk", Integer),  # alerts: papers up to this pk have been considered
    Column("last_error", String(500)),  # the SMTP server's answer that made it bounce
)
# One subscription per address and search (a second request re-sends the confirmation).
Index("ix_subscriptions_email_signature", subscriptions.c.email, subscriptions.c.signature, unique=True)
Index("ix_subscriptions_kind_status", subscriptions.c.kind, subscriptions.c.status)

# Links in mail: random tokens handed out once, stored as their SHA-256, each good for one purpose
# (confirm | manage | unsubscribe). Every mail carries its own manage and unsubscribe tokens.
mail_tokens = Table(
    "mail_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(12), nullable=False),
    Column("subscription_pk", Integer, ForeignKey("subscriptions.pk", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, index=True),
    Column("used_at", DateTime),  # confirm tokens work once
)

# Exactly-once delivery: a row is claimed (committed, status "sending") before its message is composed,
# ``handed_at`` is committed just before the message goes to the SMTP server, and "sent" is written
# after the server accepted it. The unique (subscription, period_key) makes a second claim fail.
# status: sending | sent | failed (deferred or not delivered: may be claimed again) | bounced | in_doubt
send_log = Table(
    "send_log",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("subscription_pk", Integer, ForeignKey("subscriptions.pk", ondelete="CASCADE"), nullable=False),
    Column("period_key", String(40), nullable=False),  # daily:2025-10-10, weekly:2025-W41, alert:d:2025-10-11
    Column("period_start", Date),  # digests: the first day of the period the mail covers
    Column("email", String(320), nullable=False),
    Column("status", String(10), nullable=False),
    Column("paper_pks", Json, nullable=False),  # what the mail shows, fixed at the claim
    Column("total", Integer, nullable=False),  # papers in the period, or matches of the search
    Column("subject", String(300), nullable=False),
    Column("message_id", String(200), nullable=False),  # reused when a claim is taken over
    Column("attempts", Integer, nullable=False),
    Column("claimed_at", DateTime, nullable=False),
    Column("handed_at", DateTime),
    Column("sent_at", DateTime),
    Column("error", String(500)),
    UniqueConstraint("subscription_pk", "period_key"),
)
Index("ix_send_log_status_claimed_at", send_log.c.status, send_log.c.claimed_at)

# Where each harvested OAI-PMH set stands (the harvester's checkpoint), shared by every worker and
# machine: a harvest stopped anywhere resumes anywhere (jobs/harvest.py).
harvest_checkpoints = Table(
    "harvest_checkpoints",
    metadata,
    Column("set_spec", String(200), primary_key=True),
    Column("state", Text, nullable=False),  # the checkpoint's JSON
    Column("updated_at", DateTime, nullable=False),
)


# --- For you: collections, follows, "not interested", cached recommendations (0008) ---

# A reader's named lists of papers. The saved list is the default collection (is_default), made on
# the first save; at most one per reader.
collections = Table(
    "collections",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("is_public", Boolean, nullable=False, default=False, server_default=false()),
    Column("is_default", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_collections_user_pk_name", collections.c.user_pk, collections.c.name, unique=True)
Index("ix_collections_default", collections.c.user_pk, unique=True,
      sqlite_where=collections.c.is_default, postgresql_where=collections.c.is_default)

# Ordered by position (ascending); a new saved paper goes on top (one below the smallest position).
collection_items = Table(
    "collection_items",
    metadata,
    Column("collection_pk", Integer, ForeignKey("collections.pk", ondelete="CASCADE"), primary_key=True),
    Column("paper_pk", Integer, ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True, index=True),
    Column("position", Integer, nullable=False),
    Column("note", Text),
    Column("added_at", DateTime, nullable=False),
)
Index("ix_collection_items_collection_pk_position", collection_items.c.collection_pk, collection_items.c.position)

# kind: author (target: the name as written on papers) | category (an arXiv code, "cs.RO") |
# organization (organizations.name).
follows = Table(
    "follows",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(12), primary_key=True),
    Column("target", String(300), primary_key=True),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_follows_kind_target", follows.c.kind, follows.c.target)

# "Not interested": a negative signal, undone by deleting the row.
dismissals = Table(
    "dismissals",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("paper_pk", Integer, ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", DateTime, nullable=False),
)

# One reader's ranked list, as last computed: valid while users.signals_version equals the version
# it was made from and no newer embedding exists than embeddings_seq (a refresh job recomputes it).
recommendations = Table(
    "recommendations",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("items", Json, nullable=False),  # [{"paper_pk": ..., "score": ..., "reason": {...}}], best first
    Column("signals_version", Integer, nullable=False),
    Column("embeddings_seq", BigInteger, nullable=False),
    Column("computed_at", DateTime, nullable=False),
)
