"""Alembic environment: the URL comes from the Config (``bot.db.alembic_config``) or ``DATABASE_URL``."""

import logging.config
import os

from alembic import context
from sqlalchemy import create_engine, pool

from bot.db import normalize_url
from bot.models import Base

config = context.config
if config.config_file_name and config.attributes.get("configure_logger") is not False:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.get_main_option("sqlalchemy.url") or normalize_url(
    os.environ.get("DATABASE_URL") or "sqlite:///polaris_access_bot.sqlite3"
)
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
