"""Shared fixtures. `set_mocks` is process-global, so unit tests set it per test (tests/unit)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
