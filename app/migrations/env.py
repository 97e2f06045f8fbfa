"""Alembic's environment for the reference app's migrations (bluegreen/schema.py drives it).

The database comes from the config's `sqlalchemy.url` (a `postgresql+psycopg://` URL), which the
caller sets in code: a DSN never travels on a command line. Offline (`--sql`) the same steps are
rendered as SQL instead, which is what the lint reads. Each revision runs in its own transaction,
so an expand is committed before the next revision starts, and a revision may leave its
transaction for an `autocommit_block` (the backfill of 0002, a batch per commit).

Before any revision the session gets a lock timeout and a statement timeout: a migration that
waits for a lock behind a long query fails after LOCK_TIMEOUT instead of queueing every reader
and writer behind itself, and no single statement holds what it locked for longer than
STATEMENT_TIMEOUT. Online, one migration runs at a time on a database: each takes a session
advisory lock first, and one that finds another running waits for it to end, then finds what it
has applied.
"""

from alembic import context
from sqlalchemy import create_engine, pool, text

LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "5min"
SESSION = (
    f"SET lock_timeout = '{LOCK_TIMEOUT}'",
    f"SET statement_timeout = '{STATEMENT_TIMEOUT}'",
)

ONE_AT_A_TIME = "SELECT pg_advisory_lock(hashtext('bluegreen migrations'))"

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    for statement in SESSION:
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            # Session-wide, the lock and the settings outlive each revision's commit.
            for statement in (ONE_AT_A_TIME, *SESSION):
                connection.execute(text(statement))
            connection.commit()
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
