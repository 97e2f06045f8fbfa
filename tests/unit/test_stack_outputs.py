"""A stack's own outputs read during its update: a read that meets the engine writing the
checkpoint is tried again; a missing stack is None; anything else fails the update."""

from __future__ import annotations

import types

import pytest

from platforms import stack_outputs

TORN = Exception(
    "invoke of pulumi:pulumi:readStackOutputs failed: invocation of "
    "pulumi:pulumi:readStackOutputs returned an error: failed to load checkpoint: EOF"
)


def engine(monkeypatch, *answers):
    """The engine's invoke answering `answers` in turn (an exception is raised); the waits."""
    calls, waits = list(answers), []

    def invoke(token, args):
        assert token == stack_outputs.READ_OUTPUTS and args == {"name": "org/bluegreen/data"}
        answer = calls.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return types.SimpleNamespace(value=answer)

    monkeypatch.setattr(stack_outputs.pulumi.runtime, "invoke", invoke)
    monkeypatch.setattr(stack_outputs.time, "sleep", waits.append)
    return calls, waits


def test_a_torn_read_is_tried_again_until_the_checkpoint_reads(monkeypatch):
    calls, waits = engine(monkeypatch, TORN, TORN, {"outputs": {"schema": {"applied": ["0001"]}}})
    assert stack_outputs.read_outputs("org/bluegreen/data") == {"schema": {"applied": ["0001"]}}
    assert calls == [] and waits == [0.05, 0.1]


def test_a_checkpoint_that_stays_torn_fails_the_update_with_the_engines_words(monkeypatch):
    _, waits = engine(monkeypatch, *[TORN] * stack_outputs.TRIES)
    with pytest.raises(Exception, match="failed to load checkpoint: EOF"):
        stack_outputs.read_outputs("org/bluegreen/data")
    assert len(waits) == stack_outputs.TRIES - 1 and sum(waits) < 2


def test_a_missing_stack_is_none_and_a_stack_never_updated_has_no_outputs(monkeypatch):
    engine(monkeypatch, Exception("unknown stack org/bluegreen/data"), {})
    assert stack_outputs.read_outputs("org/bluegreen/data") is None
    assert stack_outputs.read_outputs("org/bluegreen/data") == {}


def test_any_other_failure_is_raised_at_once(monkeypatch):
    _, waits = engine(monkeypatch, PermissionError("access denied to the state bucket"))
    with pytest.raises(PermissionError, match="access denied"):
        stack_outputs.read_outputs("org/bluegreen/data")
    assert waits == []
