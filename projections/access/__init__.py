"""Operators, API keys, approvals and the audit log: their tables, the view that projects
them and their queries; and the login limits and platform secrets tables."""
