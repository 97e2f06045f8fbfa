"""The flip record: evidence of every traffic change, kept in the edge stack's own state.

A resource of the edge whose inputs are the traffic the pointer implies. Its diff says "changed"
only when the traffic moves (or the command hands it a note, bluegreen/flip_evidence.py), so an
update that moves nothing leaves it alone and a preview of a flip shows it next to the switch. It
updates after the switch has applied the change, and appends a record to its `records` output (the
stack output `evidence`), which a state backend keeps wherever the update ran: a laptop, CI, a bare
`pulumi up -s live`. With bluegreen:evidenceFile it also appends each record to that JSON-lines
file.

This module keeps its name: a dynamic provider is pickled into the stack's state by reference to
its module (`components.evidence.EvidenceProvider`), and `pulumi refresh` or a delete of an
existing stack unpickles it from there. Every provider module's path is part of the state's
format; renaming one breaks the stacks already deployed.
"""

from __future__ import annotations

import os
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from bluegreen import flip_evidence


def _record(before: dict | None, props: dict[str, Any], note: dict) -> dict:
    env = os.environ
    record = {
        "time": flip_evidence.now(),
        "who": flip_evidence.who(env),
        "where": flip_evidence.where(env),
        "commit": flip_evidence.git_commit(props["root"]),
        "from": before,
        "to": props["traffic"],
        "versions": props["versions"],
        flip_evidence.SCHEMA: None,
        "smoke": flip_evidence.smoke(env),
        "hold": None,
        "outcome": "applied",
    }
    data = props.get("schema")
    if isinstance(data, dict):  # the edge read a data stack: what each release needs
        record[flip_evidence.SCHEMA] = flip_evidence.schema_record(
            before, props["traffic"], data.get("arms") or {}, data.get("applied") or []
        )
    record.update(note.get("record") or {})
    # The state drops null values; the file keeps what the state keeps.
    return {k: v for k, v in record.items() if v is not None}


class EvidenceProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        record = _record(None, props, props.get("note") or {})
        flip_evidence.append_to_file(props.get("file"), [record])
        return CreateResult(id_="evidence", outs={**props, "records": [record]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        moved = olds.get("traffic") != news.get("traffic")
        noted = bool(news.get("note")) and news.get("note") != olds.get("note")
        return DiffResult(changes=moved or noted, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        records = list(olds.get("records") or [])
        note = news.get("note") or {}
        written = []
        if records and note.get("amend"):
            records[-1] = {**records[-1], **note["amend"]}
            written.append({**records[-1], "amended": True})
        if olds.get("traffic") != news.get("traffic"):
            records.append(_record(olds.get("traffic"), news, note))
            written.append(records[-1])
        flip_evidence.append_to_file(news.get("file"), written)
        return UpdateResult(outs={**news, "records": records[-flip_evidence.KEEP :]})


class FlipRecord(Resource, module="bluegreen", name="FlipRecord"):
    """The evidence of the edge's traffic changes; `records` is the newest last."""

    records: pulumi.Output[list]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(EvidenceProvider(), name, {**props, "records": None}, opts)
