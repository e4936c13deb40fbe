"""Reports over a year of a 10,000-account site: the yearly sales report and one month's
account-period report, against a plain ``SELECT count(*)`` over the same table.

The year is written straight into the read-model tables with ``generate_series`` (daily
consumption charges for every account, three top-ups a month, and the monthly totals
the ledger view keeps from them): what is measured is the reports' queries, not how the
rows got there.

Run: .venv/bin/python -m bench.reports [--accounts 10000]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bootstrap import Platform
from bench.support import Timer, pg_settings, scratch_schema
from projections.reports import account_periods, sales

ZONE = ZoneInfo("Asia/Shanghai")

GENERATE = """
INSERT INTO accounts (id, name, status, opened_at, position)
SELECT 'acct-' || g, 'Shop ' || g, 'open', TIMESTAMP '2025-12-31', g
FROM generate_series(1, :n) g;

INSERT INTO statement_entries (position, account_id, wallet, transaction_id, kind,
    amount_fen, balance_after_fen, effective_at, recorded_at, actor, channel)
SELECT 0, 'acct-' || a, 'electricity', 'c-' || a || '-' || d, 'consumption',
    -(500 + (a * 7 + d) % 900), 0,
    TIMESTAMP '2026-01-01 16:00' + d * INTERVAL '1 day',
    TIMESTAMP '2026-01-01 16:00' + d * INTERVAL '1 day', 'system:metering', NULL
FROM generate_series(1, :n) a, generate_series(0, 364) d;

INSERT INTO statement_entries (position, account_id, wallet, transaction_id, kind,
    amount_fen, balance_after_fen, effective_at, recorded_at, actor, channel)
SELECT 0, 'acct-' || a, 'electricity', 't-' || a || '-' || m || '-' || k, 'top_up',
    20000 + (a % 7) * 1000, 0,
    TIMESTAMP '2026-01-02 02:00' + m * INTERVAL '1 month' + k * INTERVAL '9 days',
    TIMESTAMP '2026-01-02 02:00' + m * INTERVAL '1 month' + k * INTERVAL '9 days',
    'operator:cashier' || (a % 5), (ARRAY['cash', 'wechat', 'alipay', 'bank'])[1 + (a + k) % 4]
FROM generate_series(1, :n) a, generate_series(0, 11) m, generate_series(0, 2) k;
INSERT INTO account_month_totals (account_id, wallet, month, kind, amount_fen)
SELECT account_id, wallet, to_char(effective_at + INTERVAL '8 hours', 'YYYY-MM'), kind,
    sum(amount_fen)
FROM statement_entries GROUP BY 1, 2, 3, 4;
ANALYZE statement_entries;
ANALYZE account_month_totals;
"""

YEAR = (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    with scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            engine = platform.engines.writer
            with Timer() as made, engine.begin() as conn:
                for statement in GENERATE.split(";"):
                    if statement.strip():
                        conn.execute(text(statement), {"n": args.accounts})
            reader = platform.engines.reader
            # Freshly written rows: the sales index cannot yet answer alone (the table's
            # visibility map is unset, so every row it finds is checked in the table).
            with Timer() as fresh:
                sales(reader, "year", *YEAR, ZONE)
            # As autovacuum leaves the table after inserts (PostgreSQL 13 and later).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM statement_entries"))
            with reader.connect() as conn:
                with Timer() as counting:
                    rows = conn.execute(text("SELECT count(*) FROM statement_entries")).scalar()
            timings = []
            for _ in range(3):
                with Timer() as yearly:
                    sales_rows = sales(reader, "year", *YEAR, ZONE)
                timings.append(yearly.elapsed_s)
            with Timer() as monthly:
                period_rows = account_periods(reader, "2026-06", ZONE)
        finally:
            platform.close()
    print(f"reports over one year of {args.accounts} accounts ({rows} statement rows, "
          f"made in {made.elapsed_s:.0f} s), PostgreSQL")
    print(f"  SELECT count(*) (baseline)          : {counting.elapsed_s:6.2f} s")
    best = min(timings)
    print(f"  yearly sales report, rows just written : {fresh.elapsed_s:6.2f} s  "
          f"ratio {fresh.elapsed_s / counting.elapsed_s:5.1f}x")
    print(f"  yearly sales report ({len(sales_rows)} rows)     : {best:6.2f} s  "
          f"ratio {best / counting.elapsed_s:5.1f}x   (best of "
          + ", ".join(f"{t:.2f}" for t in timings) + "; target <= 0.5 s)")
    print(f"  June account-period ({len(period_rows)} rows): {monthly.elapsed_s:6.2f} s  "
          f"ratio {monthly.elapsed_s / counting.elapsed_s:5.1f}x   (target: each < 2 s)")


if __name__ == "__main__":
    main()
