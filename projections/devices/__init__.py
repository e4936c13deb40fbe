"""Device commands: their table, the view that projects them and the device runtime's
queries; and the poll results table."""
