"""Where the local edge's nginx keeps its files: the run dir (its prefix), and what its workers
read and write (`served_dir`)."""

from __future__ import annotations

import grp
import hashlib
import pwd

SERVED_ROOT = "/run/bluegreen-edge"
WORKER_USER = "nobody"
"""The user nginx's workers run as when its master runs as root (in that user's own group)."""


def worker_user() -> tuple[str, str]:
    """`WORKER_USER` and its primary group's name (nogroup on Debian, nobody elsewhere)."""
    return WORKER_USER, grp.getgrgid(pwd.getpwnam(WORKER_USER).pw_gid).gr_name


def served_dir(run_dir: str, as_root: bool) -> str:
    """Where the local edge keeps what its workers read and write: the switch state, the lease
    stamps, the temp and cache directories. The run dir, unless nginx runs as root: then its
    workers run as `WORKER_USER`, who may not reach the run dir at all (a project under /root, a
    test's 0700 temp dir), and they get a directory of their own under `SERVED_ROOT`, which
    only root can create in, named by the run dir."""
    if not as_root:
        return run_dir
    return f"{SERVED_ROOT}/{hashlib.sha256(run_dir.encode()).hexdigest()[:16]}"


LEASE_DIR = "lease"
"""The local edge's directory of lease stamps, in its `served_dir` (`$bluegreen_lease_dir`)."""
