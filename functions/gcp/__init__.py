"""Cloud Functions (gen2) entry points in ``main.py``: ``http``, ``vertex_events``, ``sweeper`` and
``sweeper_pubsub``. Deployed by ``infra/gcp``; each builds its wiring on first invocation through
``core.hosts``."""
