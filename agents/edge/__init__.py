"""The edge host's agent: the maintenance queue's service (queue_service.py), its store
(intents.py) and its replay (replay.py)."""
