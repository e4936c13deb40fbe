"""Sites, gateways, tariffs, meters, daily consumption and meter alerts: their tables, the
view that projects them and their queries; and the readings table."""
