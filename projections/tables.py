"""The catalogue of the read-model tables: every feature's tables module, imported here
so that ``metadata`` holds every table the migrations create.

Alembic (``migrations/env.py``) and the tests that need the whole schema take
``metadata`` from here. Code that reads or writes a table imports it from its feature
(``projections/<feature>/tables.py``); this module declares no table of its own.
"""

from __future__ import annotations

from projections import schema
from projections.access import tables as access_tables
from projections.accounts import tables as accounts_tables
from projections.alerts import tables as alerts_tables
from projections.devices import tables as devices_tables
from projections.metering import tables as metering_tables
from projections.payments import tables as payments_tables
from projections.property import tables as property_tables

metadata = schema.metadata

# Every feature's tables module, in the order the views run.
FEATURE_TABLES = (accounts_tables, metering_tables, devices_tables, payments_tables,
                  property_tables, alerts_tables, access_tables)
