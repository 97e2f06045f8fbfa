"""The nginx installed on this host, which the local edge runs: where it is, its version, its
njs module, and the error the edge fails with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

# Debian's libnginx-mod-http-js puts the module here; other builds of nginx elsewhere.
JS_MODULES = (
    "/usr/lib/nginx/modules/ngx_http_js_module.so",
    "/usr/lib64/nginx/modules/ngx_http_js_module.so",
    "/usr/local/nginx/modules/ngx_http_js_module.so",
    "/etc/nginx/modules/ngx_http_js_module.so",
)


class FlipError(RuntimeError):
    """The edge refused or could not complete a change; what was serving before still serves."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
        None,
    )
    if not found:
        raise FlipError(
            "nginx is not installed: run scripts/bootstrap (it installs Debian's nginx-light)"
        )
    return found


def nginx_version() -> tuple[int, ...]:
    """The version of the nginx on PATH, e.g. (1, 22, 1); () if it cannot tell."""
    out = run([nginx_binary(), "-v"]).stderr
    found = re.search(r"nginx/([0-9]+(?:\.[0-9]+)*)", out)
    return tuple(int(p) for p in found.group(1).split(".")) if found else ()


def js_module() -> str | None:
    """The nginx njs module, which the switch needs to move traffic without a reload."""
    return next((p for p in JS_MODULES if os.path.exists(p)), None)


NO_JS = (
    "the nginx njs module (ngx_http_js_module.so) is not installed: run scripts/bootstrap "
    "(it installs Debian's libnginx-mod-http-js); the local edge moves traffic with it, "
    "without reloading nginx"
)


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)
