"""All SQL lives here: the schema, its migrations and the queries. Returns models, never rows."""

from operator_sim.store import catalog, requests
from operator_sim.store.database import Database, Synchronous, open_database
from operator_sim.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Database", "Synchronous", "catalog", "open_database", "requests"]
