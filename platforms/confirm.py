"""Confirm a flip through the edge itself, on platforms whose switch is a cloud API call.

The `pulumi up` that flips must not report success unless traffic really moved: an ALB accepts a
listener update before every node applies it. This resource, updated after the switch with the
fingerprint of the new config, polls the edge's URL until the expected colour answers, and fails
the update (with what it saw) if it does not in time.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from bluegreen import probe


class ConfirmProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _confirm(self, props: dict[str, Any]) -> dict[str, Any]:
        expected = props.get("color")  # None during a canary split: any answer will do

        def moved(a: probe.Answer) -> bool:
            return a.ok and (expected is None or a.color == expected)

        answer, waited = probe.wait_until(
            props["url"], moved, timeout=float(props["timeout"]), interval=0.5
        )
        if not moved(answer):
            seen = f"answered from {answer.color}" if answer.status else answer.describe()
            raise RuntimeError(
                f"Switch to {expected or 'the canary split'} not confirmed: after {waited:.0f} s "
                f"the edge at {props['url']} {seen}. The switch was applied; check the edge and "
                "roll back (scripts/rollback) if traffic is not where it should be."
            )
        return {**props, "confirmedAfterSeconds": round(waited, 2)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="confirm", outs=self._confirm(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._confirm(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("url", "color", "fingerprint")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))


class TrafficConfirmation(Resource, module="edge", name="TrafficConfirmation"):
    """Polls the edge after a switch until the expected colour answers."""

    confirmedAfterSeconds: pulumi.Output[float]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(ConfirmProvider(), name, {**props, "confirmedAfterSeconds": None}, opts)
