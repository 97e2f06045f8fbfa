"""The queue service's own checks, in process: a store others can read is refused (the service as a
real process: tests/integration/test_queue_service.py)."""

from __future__ import annotations

import os

import pytest

from agents.edge import intents


def test_a_world_readable_store_is_refused(tmp_path):
    key = tmp_path / "k"
    intents.load_key(str(key), create=True)
    os.chmod(key, 0o644)
    with pytest.raises(intents.StoreError):
        intents.load_key(str(key))
