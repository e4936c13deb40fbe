"""Metering read models: sites, units, gateways, tariffs, meters, daily consumption,
meter alerts; and the meter_readings telemetry table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from projections.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table('consumption_daily',
    sa.Column('meter_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=True),
    sa.Column('energy_wh', sa.BigInteger(), nullable=False),
    sa.Column('charge_fen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('meter_id', 'day')
    )
    op.create_index('ix_consumption_account_day', 'consumption_daily', ['account_id', 'day'], unique=False)
    op.create_index('ix_consumption_day', 'consumption_daily', ['day'], unique=False)
    op.create_table('gateways',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=32), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('meter_alerts',
    sa.Column('id', AutoId, autoincrement=True, nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('meter_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('read_at', UTCDateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raised_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_meter_alerts_meter', 'meter_alerts', ['meter_id', 'id'], unique=False)
    op.create_table('meter_readings',
    sa.Column('meter_id', sa.String(length=36), nullable=False),
    sa.Column('read_at', UTCDateTime(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('sharp', sa.BigInteger(), nullable=True),
    sa.Column('peak', sa.BigInteger(), nullable=True),
    sa.Column('flat', sa.BigInteger(), nullable=True),
    sa.Column('valley', sa.BigInteger(), nullable=True),
    sa.Column('power_w', sa.Integer(), nullable=True),
    sa.Column('voltage_dv', sa.Integer(), nullable=True),
    sa.Column('current_ca', sa.Integer(), nullable=True),
    sa.Column('relay', sa.String(length=8), nullable=True),
    sa.Column('billing', sa.String(length=16), nullable=False),
    sa.Column('recorded_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('meter_id', 'read_at')
    )
    op.create_table('meters',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('meter_no', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('site_id', sa.String(length=36), nullable=True),
    sa.Column('gateway_id', sa.String(length=36), nullable=True),
    sa.Column('address', sa.Integer(), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('ct_ratio', sa.Integer(), nullable=False),
    sa.Column('building', sa.String(length=64), nullable=True),
    sa.Column('floor', sa.String(length=32), nullable=True),
    sa.Column('unit', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.String(length=36), nullable=True),
    sa.Column('tariff_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('replaced_by', sa.String(length=36), nullable=True),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meter_no')
    )
    op.create_index('ix_meters_account', 'meters', ['account_id'], unique=False)
    op.create_index('ix_meters_gateway', 'meters', ['gateway_id'], unique=False)
    op.create_index('ix_meters_position', 'meters', ['position'], unique=False)
    op.create_table('site_units',
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('building', sa.String(length=64), nullable=False),
    sa.Column('floor', sa.String(length=32), nullable=False),
    sa.Column('area_m2', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('site_id', 'code')
    )
    op.create_table('sites',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('poll_interval_s', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tariffs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('versions', sa.Integer(), nullable=False),
    sa.Column('current_from', UTCDateTime(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    for table in ("meter_readings", "meter_alerts", "consumption_daily", "meters", "tariffs",
                  "gateways", "site_units", "sites"):
        op.drop_table(table)
