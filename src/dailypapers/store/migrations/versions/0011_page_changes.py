"""A change sequence for cached pages: the counter "pages", raised by triggers in the same
transaction as every write to what an anonymous reader's page shows (papers, votes, comments,
organizations, users' names); see store/backend.py and web/pagecache.py.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from dailypapers.store.backend import create_page_triggers, drop_page_triggers

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_page_triggers(op.get_bind())


def downgrade() -> None:
    drop_page_triggers(op.get_bind())
