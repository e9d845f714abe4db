"""Security: verified addresses, throttling shared by all workers, comments rendered once.

Existing accounts start unverified: nothing proved they read their address, so they confirm it
before their subscriptions are theirs to see. login_attempts goes: sign-in guesses are counted in
throttle_hits (per account and per client address, with back-off).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime))
    op.add_column("comments", sa.Column("body_html", sa.Text))
    _render_existing_comments()
    op.create_table(
        "email_verifications",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime),
    )
    op.create_index("ix_email_verifications_user_pk", "email_verifications", ["user_pk"])
    op.create_index("ix_email_verifications_expires_at", "email_verifications", ["expires_at"])
    op.create_table(
        "throttle_hits",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_throttle_hits_key_at", "throttle_hits", ["key", "at"])
    op.create_index("ix_throttle_hits_expires_at", "throttle_hits", ["expires_at"])
    op.drop_table("login_attempts")


def _render_existing_comments() -> None:
    """Comments written before 0006, rendered with the renderer new comments use, in batches."""
    from dailypapers.community import render_markdown

    conn = op.get_bind()
    comments = sa.table("comments", sa.column("pk", sa.Integer), sa.column("body", sa.Text),
                        sa.column("body_html", sa.Text))
    last = 0
    while batch := conn.execute(sa.select(comments.c.pk, comments.c.body).where(comments.c.pk > last)
                                .order_by(comments.c.pk).limit(500)).all():
        conn.execute(sa.update(comments).where(comments.c.pk == sa.bindparam("b_pk"))
                     .values(body_html=sa.bindparam("b_html")),
                     [{"b_pk": pk, "b_html": render_markdown(body)} for pk, body in batch])
        last = batch[-1].pk


def downgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_login_attempts_key_at", "login_attempts", ["key", "at"])
    op.drop_table("throttle_hits")
    op.drop_table("email_verifications")
    op.drop_column("comments", "body_html")
    op.drop_column("users", "email_verified_at")
