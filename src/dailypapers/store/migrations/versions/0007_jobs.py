"""Jobs: the harvest checkpoints in the database, and procrastinate's job queue on PostgreSQL.

procrastinate's own schema (tables procrastinate_*, its functions and triggers) comes from the
installed procrastinate's SchemaManager; a later procrastinate version that changes it brings
its migration files (see docs/operating.md, "Jobs"). SQLite runs the jobs in-process: no queue.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from dailypapers.store.backend import is_postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PROCRASTINATE_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                        "procrastinate_workers")


def upgrade() -> None:
    op.create_table(
        "harvest_checkpoints",
        sa.Column("set_spec", sa.String(200), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    if is_postgresql(op.get_bind()):
        from procrastinate.schema import SchemaManager

        # Through the driver's cursor with no parameters: the SQL holds literal % signs.
        op.get_bind().connection.cursor().execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.drop_table("harvest_checkpoints")
    conn = op.get_bind()
    if not is_postgresql(conn):
        return
    for table in PROCRASTINATE_TABLES:  # with them their triggers
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    functions = conn.execute(sa.text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'")).scalars().all()
    for function in functions:
        op.execute(f"DROP FUNCTION IF EXISTS {function} CASCADE")
    types = conn.execute(sa.text(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c')"
    )).scalars().all()  # the tables' own row types went with them
    for name in types:
        op.execute(f"DROP TYPE IF EXISTS {name} CASCADE")
