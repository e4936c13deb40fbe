"""The readings table: telemetry stored for volume, one row per (meter, read_at)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, and_, or_, select, update

from ledger.metering import StoredReading
from projections.bulk import insert_new
from projections.metering.tables import meter_readings

BANDS = ("sharp", "peak", "flat", "valley")
NEW_READING_BILLINGS = ("charged", "started")
LOOKUP_CHUNK = 500


class SqlReadingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store(self, rows: Sequence[StoredReading]) -> list[str]:
        """Insert what is new; for the rest say whether the stored row is the same."""
        values = [_row(r) for r in rows]
        with self.engine.begin() as conn:
            insert_new(conn, meter_readings, values, ["meter_id", "read_at"])
            verdicts = ["inserted"] * len(rows)
            # A reading the meter billed just now is new; the others may have been here.
            maybe_old = [i for i, r in enumerate(rows) if r.billing not in NEW_READING_BILLINGS]
            for start in range(0, len(maybe_old), LOOKUP_CHUNK):
                chunk = maybe_old[start:start + LOOKUP_CHUNK]
                keys = [and_(meter_readings.c.meter_id == values[i]["meter_id"],
                             meter_readings.c.read_at == values[i]["read_at"]) for i in chunk]
                found = {(r.meter_id, r.read_at): r for r in conn.execute(
                    select(meter_readings).where(or_(*keys)))}
                for i in chunk:
                    stored = found.get((values[i]["meter_id"], values[i]["read_at"]))
                    same = stored is not None and stored.total == values[i]["total"] and all(
                        getattr(stored, b) == values[i][b] for b in BANDS)
                    verdicts[i] = "identical" if same else "conflict"
        return verdicts

    def mark_billed(self, meter_id, read_ats) -> None:
        """Readings held for want of a tariff that a tariff assignment has now charged."""
        with self.engine.begin() as conn:
            for start in range(0, len(read_ats), LOOKUP_CHUNK):
                conn.execute(update(meter_readings).where(
                    meter_readings.c.meter_id == str(meter_id),
                    meter_readings.c.read_at.in_(read_ats[start:start + LOOKUP_CHUNK]),
                    meter_readings.c.billing == "held").values(billing="charged"))


def _row(r: StoredReading) -> dict:
    bands = r.reading.bands or {}
    return {"meter_id": str(r.meter_id), "read_at": r.reading.read_at, "total": r.reading.total,
            **{b: bands.get(b) for b in BANDS}, "power_w": r.reading.power_w,
            "voltage_dv": r.reading.voltage_dv, "current_ca": r.reading.current_ca,
            "relay": r.reading.relay, "billing": r.billing, "recorded_at": r.recorded_at}
