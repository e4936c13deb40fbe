"""Balance alerts and their notifications: their tables, the view that projects them and
their queries."""
