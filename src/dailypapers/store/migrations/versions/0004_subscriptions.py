"""Email: subscriptions (digests and saved-search alerts), their link tokens, and the send log.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="SET NULL")),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("query", sa.String(300)),
        sa.Column("filters", Json, nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime),
        sa.Column("changed_at", sa.DateTime, nullable=False),
        sa.Column("requested_at", sa.DateTime),
        sa.Column("alert_after_pk", sa.Integer),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_index("ix_subscriptions_user_pk", "subscriptions", ["user_pk"])
    op.create_index("ix_subscriptions_email_signature", "subscriptions", ["email", "signature"], unique=True)
    op.create_index("ix_subscriptions_kind_status", "subscriptions", ["kind", "status"])

    op.create_table(
        "mail_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(12), nullable=False),
        sa.Column(
            "subscription_pk",
            sa.Integer,
            sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("used_at", sa.DateTime),
    )
    op.create_index("ix_mail_tokens_subscription_pk", "mail_tokens", ["subscription_pk"])
    op.create_index("ix_mail_tokens_expires_at", "mail_tokens", ["expires_at"])

    op.create_table(
        "send_log",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "subscription_pk",
            sa.Integer,
            sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("period_key", sa.String(40), nullable=False),
        sa.Column("period_start", sa.Date),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("paper_pks", Json, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("handed_at", sa.DateTime),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("error", sa.String(500)),
        sa.UniqueConstraint("subscription_pk", "period_key", name="uq_send_log_subscription_pk"),
    )
    op.create_index("ix_send_log_status_claimed_at", "send_log", ["status", "claimed_at"])


def downgrade() -> None:
    for table in ("send_log", "mail_tokens", "subscriptions"):
        op.drop_table(table)
