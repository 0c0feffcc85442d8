"""The job queue's schema, taken from the installed procrastinate (pinned in constraints.txt).

Later procrastinate upgrades ship their own SQL migrations (procrastinate/sql/migrations/); add
each as a Sourcebook migration when the lock moves.
"""

from procrastinate.schema import SchemaManager
from yoyo import step

__depends__ = {"0002_ingest"}


def apply(conn):
    # Executed without parameters, so the schema's '%' characters are not placeholders.
    conn.cursor().execute(SchemaManager.get_schema())


steps = [step(apply)]
