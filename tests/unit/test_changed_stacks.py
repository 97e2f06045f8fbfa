"""The choice of stacks CI previews and updates from a git diff."""

from scripts.changed_stacks import stacks_for
from tests.support.changed_stacks_cases import STACKS


def test_the_one_line_flip_touches_only_live():
    assert stacks_for(["Pulumi.live.yaml"], STACKS) == ["live"]


def test_an_arm_deploy_touches_only_that_arm():
    assert stacks_for(["Pulumi.green.yaml", "README.md"], STACKS) == ["green"]


def test_program_changes_touch_every_stack_arms_first():
    assert stacks_for(["components/edge.py"], STACKS) == ["blue", "green", "live"]
    assert stacks_for(["policy/bluegreen_policy/rules.py", "Pulumi.live.yaml"], STACKS) == [
        "blue",
        "green",
        "live",
    ]


def test_docs_and_tests_touch_nothing():
    assert stacks_for(["README.md", "tests/unit/test_config.py", "bench/x.py"], STACKS) == []


def test_a_deleted_stack_file_is_not_deployed():
    assert stacks_for(["Pulumi.staging.yaml"], STACKS) == []


def test_the_data_stack_goes_before_the_arms():
    stacks = [*STACKS, "data"]
    assert stacks_for(["components/arm.py"], stacks) == ["data", "blue", "green", "live"]
    assert stacks_for(["Pulumi.data.yaml", "Pulumi.blue.yaml"], stacks) == ["data", "blue"]
