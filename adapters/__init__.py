"""The outside world: meters, secure frames, payment providers, notifiers, files, Celery."""
