"""What a platform adapter is and returns, so components and the edge never depend on one platform.

An adapter is two frozen dataclasses, one per role, each holding the platform's own keys for that
role, read and validated by its `from_config`; `arm()` and `edge()` declare the resources. A key
that only one role of one platform uses is a field of that class alone, so it is never Optional.
A platform that runs the data stack's database has a third, a `DataPlatform` (`database()`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Self

import pulumi

from bluegreen.config import ArmSettings, DataSettings, Dns, EdgeSettings, utc_text
from bluegreen.reader import NAMESPACE, Reader


@dataclass(frozen=True)
class ArmEndpoint:
    """What an arm stack exports: the edge and the policy pack read these through StackReference."""

    endpoint: pulumi.Output[str]
    """URL that reaches this arm alone (smoke tests, people testing the idle arm)."""
    nodes: pulumi.Output[list[str]]
    """host:port of each node the edge sends traffic to."""
    exports: dict[str, pulumi.Output] = field(default_factory=dict)
    """Platform-specific outputs the platform's edge needs (e.g. targetGroupArn), exported."""


@dataclass(frozen=True)
class ArmView:
    """An arm as the edge sees it: values read from the arm stack's outputs."""

    color: str
    endpoint: pulumi.Input[str]
    version: pulumi.Input[str]
    nodes: pulumi.Input[list[str]]
    outputs: pulumi.Output[dict]
    """Every output of the arm stack, for platform-specific ones such as targetGroupArn."""


@dataclass(frozen=True)
class EdgeEndpoint:
    """What the edge stack exports."""

    url: pulumi.Output[str]
    """Where users' traffic enters. Known at plan time wherever the config fixes it: the DNS
    records point at it, and an unknown here shows in a flip's preview as a phantom change."""
    generation: pulumi.Output[str]
    """Fingerprint of the edge config that is serving."""
    exports: dict[str, pulumi.Output] = field(default_factory=dict)
    """Platform-specific outputs the edge stack exports (e.g. albDnsName for DNS aliases)."""
    metrics: pulumi.Input[dict] | None = None
    """Where the hold after a flip reads traffic per colour, as cutover/sources/ reads it:
    {"source": "accessLog" | "prometheus" | "cloudwatch", ...}, exported as `metrics`."""
    hosts: list[str] | None = None
    """The address of each edge, where the DNS name's records point (None: the url's host)."""


@dataclass(frozen=True)
class DataLink:
    """The data stack as an arm reads it (components/data.py `data_from_stack`): set only on an
    arm with bluegreen:schemaRevision."""

    stack: str
    """The data stack's whole name (org/project/stack)."""
    needs: str
    """The revision this arm's release needs."""
    dsn: pulumi.Output[str]
    """The libpq DSN of the database, a secret: it goes to the app in an owner-only file."""
    applied: pulumi.Output[list[str]]
    """The revisions applied to the database, oldest first, as the data stack last recorded."""
    floor: pulumi.Output[str | None] | None = None
    """What the newest applied contract `contracts` (None: no contract applied): a release needing
    a revision before it needs a shape that is gone (components/data.py)."""
    floor_contract: pulumi.Output[str | None] | None = None
    """The applied contract that set `floor`, named in the policy pack's refusal."""

    @property
    def items_shape(self) -> str:
        """The reference app's shape of the items table for `needs`: v1 reads `title`, which only
        0001_items has alone; from 0002_items_name on, v2 reads `name`."""
        return "v1" if self.needs == "0001_items" else "v2"


@dataclass(frozen=True)
class DataEndpoint:
    """What a platform's database gives the data stack."""

    dsn: pulumi.Output[str]
    """A libpq DSN (postgresql://user:password@host:port/db), secret, that the migration and the
    arms connect with; it resolves once the database answers."""
    instance: pulumi.Output[str]
    """What tells this database apart from one created in its place (its system identifier on
    local): a new one is migrated again even when its DSN is the same."""


Arms = dict[str, ArmView]
"""Both arms as the edge reads them from their stacks, by colour."""


def refused(key: str, value: object, why: str, allowed: str) -> str:
    """One of `EdgePlatform.refusals`: "bluegreen:<key> is <value>, but <why>: <allowed>", e.g.
    `bluegreen:cache is true, but the aws edge (an ALB) has no cache: set it to false, ...`."""
    if isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, str):
        shown = f'"{value}"'
    elif isinstance(value, (list, tuple)):
        shown = json.dumps(list(value))
    else:
        shown = str(value)
    return f"{NAMESPACE}:{key} is {shown}, but {why}: {allowed} (nothing was changed)"


class ArmPlatform(ABC):
    """One platform's arm: its own keys and how it declares an arm's compute."""

    @classmethod
    @abstractmethod
    def from_config(cls, read: Reader) -> Self:
        """Read and validate this platform's arm keys; problems go to `read`."""

    def preflight(self, s: ArmSettings) -> None:
        """Check the config against the world before anything is declared; raise `ConfigError`
        naming the key, the value and what is allowed. Most platforms have nothing to check."""
        return None

    @abstractmethod
    def arm(
        self, name: str, parent: pulumi.Resource, s: ArmSettings, data: DataLink | None = None
    ) -> ArmEndpoint:
        """Declare one arm's compute as children of `parent`. `data`: the data stack as the arm
        reads it, given only when the arm needs a schema (bluegreen:schemaRevision)."""


def write_refusals(settings: EdgeSettings, edge: str, only: str) -> list[str]:
    """What only an nginx edge with njs (local, nixos) does for writes across a cutover: keep
    write intents during maintenance (a queue service behind the edge), and serve a window's
    times (a status page, Retry-After counting down). `edge` names the platform's edge."""
    m = settings.maintenance
    found = []
    if m.queue.enabled:
        found.append(
            refused(
                "maintenanceQueue",
                ",".join(m.queue.paths),
                f"{edge} cannot pass writes to a queue service during maintenance",
                f'set it to "", {only}: writes are refused with 503/423 and Retry-After',
            )
        )
    for key, moment in (("maintenanceStart", m.window.start), ("maintenanceEnd", m.window.end)):
        if moment is not None:
            found.append(
                refused(
                    key,
                    utc_text(moment),
                    f"{edge} cannot serve the window's status page or count Retry-After down "
                    "to its end",
                    f'set it to "", {only}, and announce the window on your status page',
                )
            )
    return found


class EdgePlatform(ABC):
    """One platform's edge: its own keys and how it declares the traffic switch."""

    @classmethod
    @abstractmethod
    def from_config(cls, read: Reader) -> Self:
        """Read and validate this platform's edge keys; problems go to `read`."""

    def preflight(self, s: EdgeSettings) -> None:
        """As `ArmPlatform.preflight`, for the edge."""
        return None

    def refusals(self, s: EdgeSettings) -> list[str]:
        """What `s` asks of the switch that this platform cannot do (an edge cache on an ALB,
        say), one message each naming the key, its value and what is allowed here. They are
        reported with every other config problem, before anything is declared."""
        return []

    @abstractmethod
    def edge(self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms) -> EdgeEndpoint:
        """Declare the traffic switch in front of `arms`, weighted as `s` says."""

    def dns_server(
        self, name: str, parent: pulumi.Resource, s: EdgeSettings, d: Dns, secret: pulumi.Output
    ) -> list[pulumi.Resource]:
        """The RFC 2136 primary this platform runs itself, if any; the records wait for it."""
        return []

    def latency_sites(self, s: EdgeSettings) -> list | None:
        """Several edges behind latency-routed, health-checked records (platforms/dns.py
        `LatencySite`s, Route 53 on aws), in site order; None: the live name is one record of
        every edge's address (with, where the platform runs one, a health agent beside it)."""
        return None


class DataPlatform(ABC):
    """One platform's data stack: its own keys and how it runs the database the arms share."""

    @classmethod
    @abstractmethod
    def from_config(cls, read: Reader) -> Self:
        """Read and validate this platform's data keys; problems go to `read`."""

    def preflight(self, s: DataSettings) -> None:
        """As `ArmPlatform.preflight`, for the data stack."""
        return None

    @abstractmethod
    def database(self, name: str, parent: pulumi.Resource, s: DataSettings) -> DataEndpoint:
        """Declare the database (a PostgreSQL) as children of `parent`; the component migrates
        it (platforms/migration.py) through the DSN this returns."""
