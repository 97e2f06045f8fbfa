"""The local edge's `server` block: the listen address, the documents the edge answers itself,
the prefixes it closes, and `location /`, where users' requests go to the colour switch.js picks
(or are refused in maintenance), with what the features that are on add on the way."""

from __future__ import annotations

from bluegreen.nginx import ARM_PREFIX, OWN_DOCUMENTS, PROXY, group_name, indent, word


def server(listen: str, *locations: str) -> str:
    """The block: the edge's own locations, then `locations` (each rendered, or "" when off)."""
    return (
        "    server {\n"
        f"        listen {word(listen)};\n"
        + own_documents()
        + closed_prefixes()
        + "".join(locations)
        + "    }\n"
    )


def own_documents() -> str:
    """The lease and the status (`OWN_DOCUMENTS`), which the confirmation of a flip, the writers
    and people read."""
    locations = "".join(
        f"""\
        location = {path} {{
            default_type {content_type};
            if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}
            add_header Cache-Control no-store always;
            js_content bluegreen.{function};
        }}
"""
        for path, (content_type, function) in OWN_DOCUMENTS.items()
    )
    comment = "# The edge's own documents, read-only: nothing the edge serves changes state."
    return f"        {comment}\n{locations}"


def closed_prefixes() -> str:
    """What is never served through the edge."""
    return f"""\
        location ^~ /_bluegreen/ {{ return 404; }}
        # An arm's own documents (app/server.py's journal of writes) are for operators on the
        # arm's network, not for the public.
        location ^~ {ARM_PREFIX} {{ return 404; }}
"""


def maintenance() -> str:
    """Maintenance: switch.js marks the writes to refuse, with the status the state says."""
    return """\
            # Maintenance (read-only) mode: other writes are refused before any arm.
            if ($bluegreen_refuse = 503) { return 503 $bluegreen_maintenance_body; }
            if ($bluegreen_refuse = 423) { return 423 $bluegreen_maintenance_body; }
"""


def arms_location(app: str, diverts: str, directives: str) -> str:
    """`location /`. `diverts`: what takes a request before maintenance refuses it (the queue);
    `directives`: the features' on the way to the arms (limits, mirror, cache)."""
    arms = group_name(app, "")
    return f"""\
        location / {{
            default_type application/json;
            if ($bluegreen_color = "") {{ return 503; }}
{diverts}{maintenance()}{directives}            proxy_pass http://{arms}$bluegreen_color;
{indent(PROXY, 3)}            add_header X-Bluegreen-Edge $bluegreen_edge always;
            add_header X-Bluegreen-Edge-Generation $bluegreen_generation always;
            add_header X-Bluegreen-Banner $bluegreen_banner always;
            add_header Retry-After $bluegreen_retry_after always;
            add_header Set-Cookie $bluegreen_sticky_cookie;
        }}
"""
