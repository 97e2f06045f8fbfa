"""The intent store (agents/edge/intents.py) on a SQLite file and on a real PostgreSQL server:
what a client and an operator notice: receipts, order, once-only, dead letters, sealed
credentials, owner-only files."""

from __future__ import annotations

import os

import pytest

from agents.edge import intents
from tests.support.intents_cases import KEY, TOKEN, put


def test_the_sqlite_file_is_owner_only_and_holds_no_credential_in_clear(tmp_path):
    path = tmp_path / "q" / "intents.sqlite3"
    s = intents.open_store(f"sqlite:///{path}", KEY)
    put(s, "k", headers={"Authorization": TOKEN, "User-Agent": "visible-agent"})
    try:
        raw = b"".join(
            p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)
        )
        assert b"visible-agent" in raw  # the search would find a clear value
        assert TOKEN.encode() not in raw and b"tok-8c1e0f2d9a" not in raw
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        for p in path.parent.iterdir():
            assert oct(p.stat().st_mode & 0o777) == "0o600", p
        assert {p.name for p in path.parent.iterdir()} >= {path.name, path.name + "-wal"}
    finally:
        s.close()
    os.chmod(path, 0o644)
    with pytest.raises(intents.StoreError, match=rf"{path} is mode 0644"):
        intents.open_store(f"sqlite:///{path}", KEY)


def test_the_key_file_is_made_owner_only_and_a_readable_one_is_refused(tmp_path):
    path = tmp_path / "keys" / "queue.key"
    key = intents.load_key(str(path), create=True)
    assert len(key) == 32 and intents.load_key(str(path)) == key
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    os.chmod(path, 0o640)
    with pytest.raises(intents.StoreError, match="mode 0640"):
        intents.load_key(str(path))


def test_a_store_spec_that_is_neither_is_refused(tmp_path):
    with pytest.raises(intents.StoreError, match="sqlite:///absolute/path or a postgresql"):
        intents.open_store("mysql://x", KEY)
    with pytest.raises(intents.StoreError, match="absolute path"):
        intents.open_store("sqlite://relative.db", KEY)
    with pytest.raises(intents.StoreError, match="32 bytes"):
        intents.open_store(f"sqlite:///{tmp_path}/x.db", b"short")


def test_a_sqlite_store_keeps_its_disk_margin(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    s = intents.open_store(
        f"sqlite:///{tmp_path}/q/i.sqlite3", KEY, intents.Limits(min_free_bytes=free + (1 << 30))
    )
    try:
        with pytest.raises(intents.QueueFull, match="MiB free") as full:
            put(s, "k")
        assert full.value.reason == "disk-full" and s.counts()["pending"] == 0
    finally:
        s.close()


def test_a_key_is_made_only_for_a_store_that_holds_nothing_sealed(tmp_path):
    spec, key = f"sqlite:///{tmp_path}/q/i.sqlite3", tmp_path / "q" / "i.key"
    s = intents.open_keyed(spec, str(key))
    put(s, "k")
    s.close()
    key.unlink()
    with pytest.raises(intents.StoreError, match=f"no key file at {key}, but the intent store"):
        intents.open_keyed(spec, str(key))
    assert not key.exists()
    with pytest.raises(intents.StoreError, match=f"no key file at {key}"):
        intents.load_key(str(key))
