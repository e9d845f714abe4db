"""Accounts and community: user credentials, votes, comments, saved papers, sessions, resets, login attempts.

Revision ID: 0003
Revises: 0002

The new ``users`` columns are added with plain ADD COLUMN (no table rebuild on SQLite, where a rebuild
of ``users`` would fight the foreign keys that papers hold on it); uniqueness comes from unique indexes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email", sa.String(320)))
    op.add_column("users", sa.Column("password_hash", sa.String(300)))
    op.add_column("users", sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("users", sa.Column("api_token_hash", sa.String(64)))
    op.create_index("ix_users_email", "users", ["email"], unique=True)
    op.create_index("ix_users_api_token_hash", "users", ["api_token_hash"], unique=True)

    op.create_table(
        "upvotes",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk"), primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_upvotes_paper_pk", "upvotes", ["paper_pk"])

    op.create_table(
        "comments",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("edited_at", sa.DateTime),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_comments_paper_pk_created_at", "comments", ["paper_pk", "created_at"])
    op.create_index("ix_comments_user_pk", "comments", ["user_pk"])

    op.create_table(
        "saved_papers",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_saved_papers_paper_pk", "saved_papers", ["paper_pk"])

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_sessions_user_pk", "sessions", ["user_pk"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])

    op.create_table(
        "password_resets",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime),
    )
    op.create_index("ix_password_resets_user_pk", "password_resets", ["user_pk"])

    op.create_table(
        "login_attempts",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_login_attempts_key_at", "login_attempts", ["key", "at"])


def downgrade() -> None:
    for table in ("login_attempts", "password_resets", "sessions", "saved_papers", "comments", "upvotes"):
        op.drop_table(table)
    op.drop_index("ix_users_api_token_hash", "users")
    op.drop_index("ix_users_email", "users")
    for column in ("api_token_hash", "is_admin", "password_hash", "email"):
        op.drop_column("users", column)  # SQLite 3.35+ drops a column in place (no rebuild of users)
