"""A data stack and arm stacks as the Pulumi mocks answer them (tests/unit/test_data.py,
test_schema_status.py): their outputs for StackReferences and `readStackOutputs`."""

from __future__ import annotations

import pulumi

from tests.support.mocks import StackMocks

DATA_OUTPUTS = {
    "dsn": "postgresql://bluegreen:pw@127.0.0.1:15432/shop",
    "schema": {
        "current": "0002_items_name",
        "applied": ["0001_items", "0002_items_name"],
        "phases": {"0001_items": "expand", "0002_items_name": "expand"},
    },
}


class DataMocks(StackMocks):
    """Stacks' outputs for StackReferences and for `pulumi:pulumi:readStackOutputs`; a stack
    not given is one never deployed (no outputs), or with `missing`, one that does not exist."""

    def __init__(self, stacks: dict[str, dict], missing: bool = False) -> None:
        super().__init__(stacks)
        self.missing = missing

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "pulumi:pulumi:readStackOutputs":
            name = args.args["name"]
            if name not in self.stacks and self.missing:
                raise Exception(f"unknown stack {name}")
            if name not in self.stacks:
                return {"name": name, "outputs": {}}
            return {"name": name, "outputs": self.stacks[name]}
        return {}


ARM = {"role": "arm", "color": "green", "version": "v2", "port": "18082"}


def build_arm_with_data(loaded, data_from_stack):
    from components import Arm, ArmArgs

    s = loaded.settings
    return Arm(s.color, ArmArgs(s, loaded.platform, data=data_from_stack(s)))


ARM_OUTPUTS = {
    "organization/bluegreen/blue": {
        "color": "blue",
        "version": "v1",
        "endpoint": "http://127.0.0.1:18081",
        "nodes": ["127.0.0.1:18081"],
    },
    "organization/bluegreen/green": {
        "color": "green",
        "version": "v2",
        "endpoint": "http://127.0.0.1:18082",
        "nodes": ["127.0.0.1:18082"],
        "schemaRevision": "0002_items_name",
    },
}
