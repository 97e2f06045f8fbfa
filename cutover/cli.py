"""The `bluegreen` command (pyproject.toml's console script)."""

from cutover.ops import main

__all__ = ["main"]
