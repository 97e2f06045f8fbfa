"""How the components name stacks to the engine and to the policy pack."""

from __future__ import annotations

import pulumi


def qualified(stack: str) -> str:
    """org/project/stack: the engine's StackReference and the policy pack's state reads need the
    whole name, which a stack file may shorten to the stack's own."""
    return stack if "/" in stack else f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"
