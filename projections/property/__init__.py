"""Property-fee schedules: their table, the view that projects them and their query."""
