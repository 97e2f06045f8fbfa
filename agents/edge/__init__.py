"""The edge host's agent: the maintenance queue's service (queue_service.py), its store
(intents.py, the front door to intent_store.py and its SQLite and PostgreSQL dialects) and its
replay (replay.py)."""
