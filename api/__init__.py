"""Entry points: the FastAPI app, the composition root and the ``prepaid`` command."""
