"""Payment orders and rejected provider notifications: their tables, the view that
projects them and their queries."""
