"""How the components name stacks to the engine and to the policy pack."""

from __future__ import annotations

import pulumi

from bluegreen import config


def qualified(stack: str) -> str:
    """The whole org/project/stack name the engine's StackReference and the policy pack's state
    reads need (`config.qualified`, with this program's organization and project)."""
    return config.qualified(stack, pulumi.get_organization(), pulumi.get_project())
