"""What tests/unit/test_layers.py and tests/integration/test_layers.py share."""

from __future__ import annotations

from pathlib import Path

from tests.support.sandbox import ROOT

ROOT_PATH = Path(ROOT)
