"""What tests/unit/test_intents.py and tests/integration/test_intents.py share."""

from __future__ import annotations

KEY = bytes(range(32))


TOKEN = "Bearer tok-8c1e0f2d9a"


def put(store, key, body=b'{"qty": 1}', path="/orders", method="POST", headers=None):
    return store.accept(key, method, path, headers or {}, body, now=1000.0)
