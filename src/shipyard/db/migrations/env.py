"""Alembic environment: runs on the connection handed over by :func:`shipyard.db.upgrade`."""

from alembic import context

from shipyard.db import (  # noqa: F401  (register tables)
    farm_models,
    fleet_models,
    repo_models,
    web_models,
)
from shipyard.db.models import Base

config = context.config
connection = config.attributes.get("connection")


def run() -> None:
    if connection is None:
        from shipyard.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=Base.metadata,
                              render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)
    context.run_migrations()


run()
