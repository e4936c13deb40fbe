"""The core every feature writes through: the event store, the one-by-one writer, the
group committer and the command bus that picks between them. Nothing here imports a
feature (tests/unit/test_architecture.py keeps it so)."""
