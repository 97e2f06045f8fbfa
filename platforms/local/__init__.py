"""The embedded default: real processes and a real nginx on loopback, no cloud account needed.

The arm is local_arm.py's (app/server.py as a process), the edge local_edge.py's (nginx, and what
its features run beside it), the data stack's PostgreSQL local_data.py's; loopback.py has what they
check of their addresses and ports.
"""

from __future__ import annotations

from platforms.local.local_arm import LocalArm
from platforms.local.local_data import LocalData
from platforms.local.local_edge import LocalEdge

ARM = LocalArm
EDGE = LocalEdge
DATA = LocalData
