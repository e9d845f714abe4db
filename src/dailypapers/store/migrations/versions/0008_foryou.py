"""For you: collections, follows, "not interested", cached recommendations.

The saved list becomes each reader's default collection ("Saved"), newest first as before; the
saved_papers table goes once its rows are copied. A downgrade copies the default collections back.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from dailypapers.store.schema import Json

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SAVED = "Saved"


def upgrade() -> None:
    op.add_column("users", sa.Column("signals_version", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "collections",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_collections_user_pk_name", "collections", ["user_pk", "name"], unique=True)
    op.create_index("ix_collections_default", "collections", ["user_pk"], unique=True,
                    sqlite_where=sa.text("is_default"), postgresql_where=sa.text("is_default"))
    op.create_table(
        "collection_items",
        sa.Column("collection_pk", sa.Integer, sa.ForeignKey("collections.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_collection_items_paper_pk", "collection_items", ["paper_pk"])
    op.create_index("ix_collection_items_collection_pk_position", "collection_items",
                    ["collection_pk", "position"])
    op.create_table(
        "follows",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(12), primary_key=True),
        sa.Column("target", sa.String(300), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_follows_kind_target", "follows", ["kind", "target"])
    op.create_table(
        "dismissals",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_dismissals_paper_pk", "dismissals", ["paper_pk"])
    op.create_table(
        "recommendations",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("items", Json, nullable=False),
        sa.Column("signals_version", sa.Integer, nullable=False),
        sa.Column("embeddings_seq", sa.BigInteger, nullable=False),
        sa.Column("computed_at", sa.DateTime, nullable=False),
    )
    _saved_into_collections()
    op.drop_table("saved_papers")


def _saved_into_collections() -> None:
    """One "Saved" collection per reader with saved papers; the newest saved gets the smallest position."""
    conn = op.get_bind()
    savers = conn.execute(sa.text(
        "SELECT user_pk, min(created_at), max(created_at) FROM saved_papers GROUP BY user_pk")).all()
    for user_pk, first, last in savers:
        collection_pk = conn.execute(sa.text(
            "INSERT INTO collections (user_pk, name, is_public, is_default, created_at, updated_at) "
            "VALUES (:user, :name, false, true, :first, :last) RETURNING pk"),
            {"user": user_pk, "name": SAVED, "first": first, "last": last}).scalar_one()
        rows = conn.execute(sa.text(
            "SELECT paper_pk, created_at FROM saved_papers WHERE user_pk = :user "
            "ORDER BY created_at DESC, paper_pk DESC"), {"user": user_pk}).all()
        conn.execute(sa.text(
            "INSERT INTO collection_items (collection_pk, paper_pk, position, added_at) "
            "VALUES (:collection, :paper, :position, :added)"),
            [{"collection": collection_pk, "paper": paper_pk, "position": i, "added": added}
             for i, (paper_pk, added) in enumerate(rows)])


def downgrade() -> None:
    op.create_table(
        "saved_papers",
        sa.Column("user_pk", sa.Integer, sa.ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_saved_papers_paper_pk", "saved_papers", ["paper_pk"])
    op.execute(
        "INSERT INTO saved_papers (user_pk, paper_pk, created_at) "
        "SELECT c.user_pk, i.paper_pk, i.added_at FROM collection_items i "
        "JOIN collections c ON c.pk = i.collection_pk WHERE c.is_default")
    for table in ("recommendations", "dismissals", "follows", "collection_items", "collections"):
        op.drop_table(table)
    op.drop_column("users", "signals_version")
