"""What a reviewer previews is what `pulumi up` does: the same steps, nothing unknown, no policy
noise, and a preview with nothing to do says so. Real CLI, real nginx, real Knot DNS."""

from __future__ import annotations

import pytest

from cutover.workspace import PulumiError

EDGE = "urn:pulumi:live::bluegreen::bluegreen:index:Edge::live"
SWITCH = (
    "urn:pulumi:live::bluegreen::bluegreen:index:Edge$pulumi-python:dynamic/local:NginxEdge::"
    "live-nginx"
)
RECORD = (
    "urn:pulumi:live::bluegreen::bluegreen:index:Edge$pulumi-python:dynamic/bluegreen:FlipRecord::"
    "live-evidence"
)


def shown(steps: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The steps the CLI shows a reviewer: default providers are the engine's own bookkeeping."""
    return {(op, urn) for op, urn in steps if "::pulumi:providers:" not in urn}


def assert_nothing_to_do(project, stack: str) -> None:
    # --expect-no-changes fails the preview if anything would change: Pulumi's own "no changes".
    result = project.ws.preview(stack, diff=True, expect_no_changes=True, check=False)
    assert result.returncode == 0, f"preview of {stack} is not empty:\n{result.stdout[-3000:]}"
    assert shown(result.outcome.steps) == set()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param([{"activeColor": "green"}, {"activeColor": "blue"}], id="flip-and-rollback"),
        pytest.param(
            [{"activeColor": "green", "canaryWeight": "25"}, {"canaryWeight": None}],
            id="canary-step-then-all",
        ),
    ],
)
def test_each_preview_shows_exactly_the_steps_its_update_takes(dns_project, changes):
    project = dns_project
    project.up_all(active="blue")
    assert_nothing_to_do(project, "live")
    for change in changes:
        for key, value in change.items():
            if value is None:
                project.ws.config_rm("live", f"bluegreen:{key}")
            else:
                project.ws.config_set("live", f"bluegreen:{key}", value)
        preview = project.ws.preview("live", diff=True)
        text = preview.stdout + preview.stderr
        assert "[unknown]" not in text, f"the preview shows an unknown value:\n{text}"
        assert "can't run policy" not in text, f"the preview shows policy noise:\n{text}"
        # The switch, and the evidence record of the traffic change it makes.
        steps = {("update", EDGE), ("update", SWITCH), ("update", RECORD)}
        assert shown(preview.outcome.steps) == steps, text
        update = project.ws.up("live")
        assert update.outcome.steps == preview.outcome.steps, "up did other than its preview"
        assert_nothing_to_do(project, "live")  # after the change, nothing is left to do
    # Nor on either arm: the edge reads them, they never read it, so once is enough.
    for stack in ("blue", "green"):
        assert_nothing_to_do(project, stack)


def test_a_ttl_above_the_limit_is_refused_once_naming_the_key(dns_project):
    project = dns_project
    project.ws.config_set("live", "bluegreen:dnsTtl", "3600")
    project.ws.up("blue")
    project.ws.up("green")
    with pytest.raises(PulumiError) as err:
        project.ws.up("live")
    violations = err.value.outcome.violations
    assert [(v.policy, v.level) for v in violations] == [("bluegreen-dns-ttl", "mandatory")]
    assert violations[0].message.startswith("bluegreen:dnsTtl 3600 on stack live denied")
    assert "Set bluegreen:dnsTtl to 30 or less" in violations[0].message
