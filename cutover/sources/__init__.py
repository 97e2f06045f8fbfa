"""Where the hold reads live traffic per colour: one interface, one source per platform.

The edge stack says which source to read and how, in its `metrics` output (each platform adapter
writes it from the stack's bluegreen:metrics* keys), so the command needs no flags to find it:

    {"source": "accessLog", "path": ...}                        local: nginx's JSON access log
    {"source": "prometheus", "url": ..., "queries": {...},      local, nixos, kubernetes
     "selectors": {"blue": ..., "green": ...}}
    {"source": "cloudwatch", "region": ..., "loadBalancer": ...,  aws
     "targetGroups": {"blue": ..., "green": ...}}

One source a file, each behind the small interface of interface.py (`MetricsSource`):
access_log.py, prometheus.py, cloudwatch.py; factory.py makes the source the output names, and
combined.py reads several edges' sources as one (a wave of ALBs). With several edges, `sites` in
the output names each edge's own log or ALB, so a wave is judged on its own edges' traffic. A
source that cannot answer raises `Unreachable`; the flip checks it before the pointer moves.
"""
