"""The application layer: eventsourcing Applications, one method per command."""
