"""The operator's objects on a test project, and its flip log."""

from __future__ import annotations

import json
import os

from cutover.operator import Operator


def operator(project) -> tuple[Operator, list[str]]:
    said: list[str] = []
    return Operator(project.ws, out=said.append), said


def flip_log(project) -> list[dict]:
    with open(os.path.join(project.dir, ".bluegreen", "flips.jsonl")) as f:
        return [json.loads(line) for line in f]
