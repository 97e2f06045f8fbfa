"""The edge cache (bluegreen:cache): nginx's proxy_cache, in the served dir."""

from __future__ import annotations

from bluegreen.config import Cache


def cache_zone(serve: str, cache: Cache) -> str:
    """The cache's directory and zone, at the http level."""
    if not cache.enabled:
        return ""
    return (
        f"    proxy_cache_path {serve}/cache levels=1:2 keys_zone=bluegreen_cache:10m "
        f"max_size={int(cache.max_size_mb)}m inactive=60m use_temp_path=off;\n"
    )


def cache_directives(cache: Cache) -> str:
    """The cache on users' requests to the arms."""
    if not cache.enabled:
        return ""
    return """\
            # Keyed by the colour and version that answer: a flip or a rollback never serves
            # the other arm's content. Only what the arm marks cacheable is kept.
            proxy_cache bluegreen_cache;
            proxy_cache_key "$bluegreen_color $bluegreen_version $scheme://$host$request_uri";
            proxy_cache_bypass $bluegreen_cache_bypass;
            proxy_no_cache $bluegreen_no_cache;
            add_header X-Bluegreen-Cache $upstream_cache_status always;
"""
