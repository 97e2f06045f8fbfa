"""Shadow traffic (bluegreen:shadow): a share of live requests mirrored to the idle arm, through
groups of their own; switch.js picks which requests and the colour (`$bluegreen_shadow`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bluegreen.config import Shadow
from bluegreen.nginx import FAILOVER, PROXY, SHADOW_LOCATION, group_name, indent, render_group


def shadow_groups(app: str, nodes: Mapping[str, Sequence[str]], shadow: Shadow) -> str:
    """One shadow group per colour: its nodes only, no backup (a copy never goes elsewhere)."""
    if not shadow.percent > 0:
        return ""
    return "".join(
        indent(
            render_group(
                group_name(app, color, shadow=True), [(a, dict(FAILOVER)) for a in addresses]
            )
        )
        for color, addresses in sorted(nodes.items())
    )


def mirror(shadow: Shadow) -> str:
    """The mirror on users' requests to the arms."""
    return f"            mirror {SHADOW_LOCATION};\n" if shadow.percent > 0 else ""


def shadow_location(app: str, run: str, shadow: Shadow) -> str:
    """Where the mirrored copies go."""
    if not shadow.percent > 0:
        return ""
    return f"""\
        # Shadow traffic: a share of live requests, copied to the idle arm; its answers are
        # discarded. Logged like users' requests, so the idle arm's figures can be compared.
        location = {SHADOW_LOCATION} {{
            internal;
            if ($bluegreen_shadow = "") {{ return 204; }}
            proxy_pass http://{group_name(app, "", shadow=True)}$bluegreen_shadow$request_uri;
{indent(PROXY, 3)}            proxy_set_header X-Bluegreen-Shadow 1;
            log_subrequest on;
            access_log {run}/access.log bluegreen if=$bluegreen_shadow;
        }}
"""
