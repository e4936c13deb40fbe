"""Read queries over the property-fee schedules."""

from __future__ import annotations

from sqlalchemy import Engine, select

from projections.property.tables import property_fee_schedules


def fee_schedule_accounts(engine: Engine) -> list:
    from uuid import UUID

    with engine.connect() as conn:
        return [UUID(r[0]) for r in conn.execute(
            select(property_fee_schedules.c.account_id)
            .order_by(property_fee_schedules.c.position))]
