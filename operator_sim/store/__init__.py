"""All SQL lives here: the schema, its migrations and the queries, one module per table.

The server sees units of work (:data:`operator_sim.store.conn.Unit`) and the store
functions they call, which return models, never rows; it never sees the driver.
"""

from operator_sim.store.conn import Conn, Unit
from operator_sim.store.database import Database, Synchronous, open_database
from operator_sim.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Conn", "Database", "Synchronous", "Unit", "open_database"]
