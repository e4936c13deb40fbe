"""Process managers over the event log: what follows from events (relay commands,
balance alerts, notifications), as opposed to the read models in ``projections/``."""
