"""The settings of what the edge does to traffic besides switching it: the edge cache
(bluegreen:cache*), shadow traffic (bluegreen:shadow*) and the limits (bluegreen:rateLimit,
connectionLimit, limit*)."""

from __future__ import annotations

from dataclasses import dataclass

from bluegreen.reader import URL_PATH, Reader


@dataclass(frozen=True)
class Cache:
    """The edge cache (nginx proxy_cache) of cacheable GET answers, keyed by the colour and the
    version that served them, so that a flip or a rollback never serves the other arm's content."""

    enabled: bool
    max_size_mb: int
    warm_paths: tuple[str, ...]
    """GET paths fetched into the new colour's namespace before traffic moves to it."""


@dataclass(frozen=True)
class Shadow:
    """Shadow traffic: a share of live requests mirrored to the idle arm, answers discarded."""

    percent: int
    """Share of live requests mirrored, 0-100 (0: off)."""
    writes: bool
    """Mirror writes too (POST, PUT, PATCH, DELETE); off by default, as they have effects."""


LIMIT_WHEN = ("always", "hold")


@dataclass(frozen=True)
class Backpressure:
    """An edge-wide request rate limit and connection cap, answered 429 (rate) or 503
    (connections) with Retry-After, always or only for a while after traffic moves."""

    rate: int
    """Requests per second the edge passes on (0: no rate limit)."""
    burst: int
    """Requests above the rate accepted at once (nginx limit_req burst, nodelay)."""
    connections: int
    """Concurrent connections the edge serves (0: no cap)."""
    retry_after_s: int
    when: str
    """"always", or "hold": for `hold_s` seconds after each change that moves traffic."""
    hold_s: int

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or self.connections > 0


def read_cache(read: Reader) -> Cache:
    enabled = read.flag("cache")
    paths = read.strings("cacheWarmPaths")
    for path in paths:
        if not URL_PATH.fits(path.split("?", 1)[0]):
            read.problem("cacheWarmPaths", path, URL_PATH.allowed + " (a GET path to warm)")
    if paths and not enabled:
        read.problem("cacheWarmPaths", ",".join(paths), "unset while bluegreen:cache is false")
    return Cache(enabled, read.integer("cacheMaxSizeMb", 1, 1_000_000), paths)


def read_shadow(read: Reader) -> Shadow:
    return Shadow(read.integer("shadow", 0, 100), read.flag("shadowWrites"))


def read_backpressure(read: Reader) -> Backpressure:
    return Backpressure(
        rate=read.integer("rateLimit", 0, 1_000_000),
        burst=read.integer("rateLimitBurst", 0, 1_000_000),
        connections=read.integer("connectionLimit", 0, 1_000_000),
        retry_after_s=read.integer("limitRetryAfter", 1, 3600),
        when=read.choice("limitWhen", LIMIT_WHEN, '"always" or "hold"'),
        hold_s=read.integer("limitHoldSeconds", 1, 86400),
    )
