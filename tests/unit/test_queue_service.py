"""The queue service as a real process on loopback (`python -m agents.edge.queue_service`), with its
SQLite store, in front of a stand-in edge that serves the status document and records what is
replayed to it. What a client and an operator notice: receipts, refusals, intents kept across a
kill -9, replay in arrival order once each, dead letters, credentials never in clear on disk."""

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
