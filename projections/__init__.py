"""Read models in SQL, built from the event log with tracking, and the report queries."""
