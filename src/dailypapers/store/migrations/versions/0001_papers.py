"""Papers, organizations, users, and the full-text index.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from dailypapers.store import backend

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("fullname", sa.String(300)),
        sa.Column("avatar", sa.String(2000)),
    )
    op.create_table(
        "users",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("fullname", sa.String(300)),
        sa.Column("avatar_url", sa.String(2000)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "papers",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("authors", Json, nullable=False),
        sa.Column("num_authors", sa.Integer, nullable=False),
        sa.Column("categories", sa.String(1000), nullable=False),
        sa.Column("published_at", sa.DateTime, index=True),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("versions", Json, nullable=False),
        sa.Column("doi", sa.String(500)),
        sa.Column("journal_ref", sa.String(1000)),
        sa.Column("comments", sa.Text),
        sa.Column("report_no", sa.String(500)),
        sa.Column("license", sa.String(500)),
        sa.Column("submitter", sa.String(300)),
        sa.Column("github_repo", sa.String(2000)),
        sa.Column("project_page", sa.String(2000)),
        sa.Column("organization_pk", sa.Integer, sa.ForeignKey("organizations.pk"), index=True),
        sa.Column("upvotes", sa.Integer, nullable=False),
        sa.Column("source_upvotes", sa.Integer, nullable=False),
        sa.Column("submitted_on_daily_at", sa.DateTime, index=True),
        sa.Column("submitted_by_pk", sa.Integer, sa.ForeignKey("users.pk")),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("ingested_at", sa.DateTime, nullable=False),
        sa.Column("changed_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_papers_daily_feed", "papers", ["hidden", "submitted_on_daily_at"])
    backend.create_fulltext(op.get_bind())


def downgrade() -> None:
    backend.drop_fulltext(op.get_bind())
    op.drop_table("papers")
    op.drop_table("users")
    op.drop_table("organizations")
