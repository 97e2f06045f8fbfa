"""The Pulumi mocks the component tests share: record every resource, answer StackReferences
with given arm outputs, echo inputs as state. Platforms add what their cloud computes by
overriding `state` and `call`. `set_mocks` is process-global: install per test, never at import."""

from __future__ import annotations

import pulumi


class StackMocks(pulumi.runtime.Mocks):
    def __init__(self, stacks: dict[str, dict]) -> None:
        self.stacks = stacks
        self.created: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def state(self, args: pulumi.runtime.MockResourceArgs) -> dict:
        """What the provider returns on create; inputs echoed by default."""
        return dict(args.inputs)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = args
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {
                "name": args.inputs["name"],
                "outputs": self.stacks.get(args.inputs["name"], {}),
            }
        return f"{args.name}-id", self.state(args)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def install(mocks: StackMocks) -> StackMocks:
    pulumi.runtime.set_mocks(
        mocks, project="bluegreen", stack="test", preview=False, organization="organization"
    )
    return mocks
