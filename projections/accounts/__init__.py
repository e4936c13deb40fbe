"""Accounts and their money: the ledger read models (balances, statements, journal, trial
balance), the view that projects them and their queries."""
