"""Expand: items gains `name`, which version 2 of the reference app uses instead of `title`.

Revision ID: 0002_items_name
Revises: 0001_items

Both shapes run while blue and green differ: version 1 writes `title`, version 2 writes `name`.
A trigger fills whichever of the two a write left out (on INSERT) or did not change (on UPDATE),
so every row reads correctly in both shapes. The rows written before it are backfilled in
batches of BATCH ids, each batch committed on its own (outside the revision's transaction), so no
statement holds a lock on many rows for long: adding a nullable column without a default and
creating the trigger change the catalog only.
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0002_items_name"
down_revision = "0001_items"
branch_labels = None
depends_on = None

phase = "expand"

BATCH = 5000

SYNC = """
CREATE OR REPLACE FUNCTION items_title_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.name := coalesce(NEW.name, NEW.title);
        NEW.title := coalesce(NEW.title, NEW.name);
    ELSIF NEW.name IS DISTINCT FROM OLD.name AND NEW.title IS NOT DISTINCT FROM OLD.title THEN
        NEW.title := NEW.name;
    ELSIF NEW.title IS DISTINCT FROM OLD.title AND NEW.name IS NOT DISTINCT FROM OLD.name THEN
        NEW.name := NEW.title;
    END IF;
    RETURN NEW;
END
$$
"""

TRIGGER = (
    "CREATE OR REPLACE TRIGGER items_title_name BEFORE INSERT OR UPDATE ON items "
    "FOR EACH ROW EXECUTE FUNCTION items_title_name()"
)

BACKFILL = "UPDATE items SET name = title WHERE id >= :low AND id < :high AND name IS NULL"
"""One batch: the bounds are computed here, not in SQL, where psycopg would send small Python
integers as smallint and `:low + :batch` would overflow past 32,767."""


def upgrade() -> None:
    op.add_column("items", sa.Column("name", sa.Text, nullable=True), if_not_exists=True)
    op.execute(SYNC)
    op.execute(TRIGGER)
    with op.get_context().autocommit_block():
        backfill()


def backfill() -> None:
    """name = title for the rows written before the trigger, one committed batch of ids at a
    time (the rows written since, the trigger has filled)."""
    if context.is_offline_mode():
        # Rendered once: run online, it repeats for each BATCH ids from min(id) to max(id).
        once = sa.text(f"-- once per {BATCH} ids\n{BACKFILL}").bindparams(low=1, high=1 + BATCH)
        op.execute(once)
        return
    bind = op.get_bind()
    low, last = bind.execute(sa.text("SELECT min(id), max(id) FROM items")).one()
    while low is not None and low <= last:
        bind.execute(sa.text(BACKFILL), {"low": low, "high": low + BATCH})
        low += BATCH


def downgrade() -> None:
    op.execute("DROP TRIGGER items_title_name ON items")
    op.execute("DROP FUNCTION items_title_name()")
    op.drop_column("items", "name")
