"""The read models' bulk writes store exactly what SQLAlchemy's insert() stores."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, delete, insert, select, update

from projections.accounts.tables import statement_entries
from projections.bulk import insert_new, insert_rows, update_rows, upsert_add
from projections.metering.tables import consumption_daily, meter_readings
from projections.payments.tables import payment_orders

SHANGHAI = timezone(timedelta(hours=8))


def statement_rows() -> list[dict]:
    base = datetime(2026, 3, 1, 7, 30, 15, 123456, tzinfo=SHANGHAI)
    return [{"position": n, "account_id": str(uuid.uuid4()), "wallet": "electricity",
             "transaction_id": str(uuid.uuid4()), "kind": "top_up",
             "amount_fen": 10 ** 12 + n, "balance_after_fen": -n,
             "effective_at": base + timedelta(minutes=n),
             "recorded_at": (base + timedelta(seconds=n)).astimezone(timezone.utc),
             "actor": None if n % 2 else "staff:张三", "channel": "cash",
             "reference": 'quote " and \\ backslash, comma\ttab\nnewline', "reason": None,
             "corrects": None} for n in range(5)]


def stored(conn) -> list[tuple]:
    return [tuple(r[1:]) for r in conn.execute(
        select(statement_entries).order_by(statement_entries.c.id))]


def test_bulk_insert_stores_what_insert_stores(platform):
    rows = statement_rows()
    with platform.engines.writer.begin() as conn:
        conn.execute(insert(statement_entries), rows)
        expected = stored(conn)
        conn.execute(delete(statement_entries))
        if conn.dialect.name == "postgresql":
            # COPY sends aware times as instants (binary) or as naive UTC (text): the
            # session's own zone must move neither.
            conn.exec_driver_sql("SET LOCAL TimeZone = 'Asia/Shanghai'")
        insert_rows(conn, statement_entries, rows)
        assert stored(conn) == expected
        # Times come back as the same instants, whatever offset they were given in.
        assert [r[7] for r in stored(conn)] == [r["effective_at"] for r in rows]
        assert [r[8] for r in stored(conn)] == [r["recorded_at"] for r in rows]


def test_rows_with_other_python_types_store_what_insert_stores(platform):
    """A value binary COPY does not take as it is (an int in a text column) sends its
    rows the text way, through each column's own processing."""
    rows = statement_rows()
    for n, row in enumerate(rows):
        row["reference"] = 1000 + n
    with platform.engines.writer.begin() as conn:
        conn.execute(insert(statement_entries), rows)
        expected = stored(conn)
        conn.execute(delete(statement_entries))
        insert_rows(conn, statement_entries, rows)
        assert stored(conn) == expected
        assert [r[11] for r in stored(conn)] == ["1000", "1001", "1002", "1003", "1004"]


def test_upsert_adds_to_existing_rows_and_insert_new_keeps_the_first(platform):
    meter = str(uuid.uuid4())
    daily = [{"meter_id": meter, "day": f"2026-03-0{d}", "account_id": None, "energy_wh": d,
              "charge_fen": 10 * d, "cost_units": 0} for d in (1, 2)]
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    reading = {"meter_id": meter, "read_at": at, "total": 5, "sharp": None, "peak": None,
               "flat": None, "valley": None, "power_w": None, "voltage_dv": None,
               "current_ca": None, "relay": None, "billing": "charged", "recorded_at": at}
    with platform.engines.writer.begin() as conn:
        upsert_add(conn, consumption_daily, daily, ["meter_id", "day"],
                   ["energy_wh", "charge_fen", "cost_units"])
        upsert_add(conn, consumption_daily, daily[:1], ["meter_id", "day"],
                   ["energy_wh", "charge_fen", "cost_units"])
        found = {r.day: (r.energy_wh, r.charge_fen) for r in conn.execute(
            select(consumption_daily))}
        assert found == {"2026-03-01": (2, 20), "2026-03-02": (2, 20)}
        insert_new(conn, meter_readings, [reading], ["meter_id", "read_at"])
        insert_new(conn, meter_readings, [{**reading, "total": 6}, {**reading, "total": 7}],
                   ["meter_id", "read_at"])
        assert [r.total for r in conn.execute(select(meter_readings))] == [5]


def order_rows() -> list[dict]:
    at = datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI)
    return [{"out_trade_no": f"T{n}", "id": str(uuid.uuid4()), "account_id": str(uuid.uuid4()),
             "channel": "wechat", "scene": "native", "amount_fen": 100 * n,
             "status": "created", "provider_transaction_id": None, "paid_at": None,
             "created_at": at, "expires_at": at + timedelta(hours=2), "position": n}
            for n in range(4)]


def test_bulk_update_changes_what_one_update_per_row_changes(platform):
    """Changes to rows already there (a payment credited, a meter's state): the rows
    named change, the rest keep theirs, times are stored as the same instants and a
    key that names no row changes nothing."""
    rows = order_rows()
    paid = datetime(2026, 3, 1, 9, 5, 30, 250000, tzinfo=SHANGHAI)
    changes = {rows[1]["id"]: {"status": "credited", "provider_transaction_id": "42'x\\",
                               "paid_at": paid},
               rows[3]["id"]: {"status": "credited", "provider_transaction_id": None,
                               "paid_at": paid.astimezone(timezone.utc)},
               str(uuid.uuid4()): {"status": "credited", "provider_transaction_id": "none",
                                   "paid_at": paid}}

    def orders(conn) -> list[tuple]:
        return [tuple(r) for r in conn.execute(
            select(payment_orders).order_by(payment_orders.c.position))]

    with platform.engines.writer.begin() as conn:
        conn.execute(insert(payment_orders), rows)
        statement = update(payment_orders).where(payment_orders.c.id == bindparam("b_key"))
        for key, values in changes.items():
            conn.execute(statement.values(**values), {"b_key": key})
        expected = orders(conn)
        conn.execute(delete(payment_orders))
        conn.execute(insert(payment_orders), rows)
        update_rows(conn, payment_orders, "id", changes)
        found = orders(conn)
    assert found == expected
    assert [r[6] for r in found] == ["created", "credited", "created", "credited"]
    assert found[1][8] == paid and found[3][8] == paid
    assert found[1][7] == "42'x\\" and found[3][7] is None
