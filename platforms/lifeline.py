"""Our dynamic providers exit when the engine that started them goes away.

The engine starts a dynamic provider as `python -m pulumi.dynamic ENGINE_ADDRESS` and stops it
when the update ends. If the `pulumi` process itself is killed, nothing stops the provider: the
SDK's server waits forever, and with it the shell wrapper that started it. Pulumi's own plugins
ask the engine whether it is alive; the Python dynamic provider does not, so ours do it here.

`platforms/__init__.py` calls `bind_to_engine()`: every provider of ours lives in this package,
so the provider process imports it when it loads one. In any other process it does nothing.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading

_ADDRESS = re.compile(r"^(127\.[0-9.]+|localhost|\[::1\]):([0-9]{1,5})$")
_started = threading.Event()


def _engine_address() -> tuple[str, int] | None:
    """The engine's address if this process is a dynamic provider the engine started."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if getattr(spec, "name", None) != "pulumi.dynamic.__main__" or len(sys.argv) < 2:
        return None
    match = _ADDRESS.match(sys.argv[-1])
    return (match.group(1).strip("[]"), int(match.group(2))) if match else None


def _watch(address: tuple[str, int], interval: float) -> None:
    stopped = threading.Event()
    while not stopped.wait(interval):
        try:
            socket.create_connection(address, timeout=interval).close()
        except ConnectionRefusedError:
            # Nobody listens where the engine was: it is gone and no call will ever come back.
            print("bluegreen: the Pulumi engine went away; provider exiting", file=sys.stderr)
            os._exit(1)
        except OSError:
            continue  # a slow answer is not a dead engine


def bind_to_engine(interval: float = 1.0) -> None:
    """Start (once) a watch that ends this provider process when the engine stops answering."""
    address = _engine_address()
    if address is None or _started.is_set():
        return
    _started.set()
    threading.Thread(target=_watch, args=(address, interval), daemon=True).start()
