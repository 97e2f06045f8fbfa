"""The sites of the kubernetes edge (bluegreen:edges): each site is a kubeconfig context, where the
edge's objects (the live Service, the optional Ingresses) are declared again, through a provider of
its own, from the same settings.

Those objects name the arms by cluster-local names only: the pods `{app, color}` the live Service
selects, and the arms' own Services `<app>-<colour>` the Ingresses and the mirror send to. So the
edge in a context serves the arms running in that context, and every site's context must run both
arms (an arm stack per colour per context, same bluegreen:appName, namespace and version). This
stack does not deploy them, and cannot see them: it reads one arm stack per colour
(bluegreen:blueStack, greenStack), which is what the gate checks. A site whose context has no
ready pod of the new colour fails its update (pulumi-kubernetes waits for the Service's endpoints)
rather than serving nothing. Routing a site to the arms of another cluster would need an address
of the arms that resolves outside their cluster, which the arms do not have (their endpoints are
`*.svc.cluster.local`).

A flip in waves (`moving`) leaves the sites of later waves serving what they serve. The program
cannot ask a cluster what that is; it reads what the site served after the stack's last update
from the stack's own `edges` output (`served_before`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bluegreen.config import EdgeSettings
from platforms.base import refused
from platforms.kubernetes.cluster import KUBE_CONTEXT, Cluster


@dataclass(frozen=True)
class Site:
    """One copy of the edge: a site of bluegreen:edges, or the single edge without it."""

    name: str
    """The site's name; "" for the single edge of a stack without bluegreen:edges."""
    context: str
    suffix: str
    """Of its resources' names: "" for the first site, which keeps the names the single edge has,
    so a stack with one edge grows into several without replacing anything; else "-<site>"."""
    provider: str
    """"" to keep the stack's own provider `<name>-k8s` (the first site, in bluegreen:kubeContext),
    else the site's name: a provider `<name>-k8s-<site>` for its context."""


def sites(cluster: Cluster, s: EdgeSettings) -> list[Site]:
    """Each copy of the edge this stack declares, in the order of bluegreen:edges."""
    if not s.sites.several:
        return [Site("", cluster.context, "", "")]
    return [
        Site(
            site.name,
            site.place,
            f"-{site.name}" if i else "",
            "" if i == 0 and site.place == cluster.context else site.name,
        )
        for i, site in enumerate(s.sites.sites)
    ]


def refusals(cluster: Cluster, s: EdgeSettings) -> list[str]:
    """Contexts that cannot each hold one copy of the edge: a place that is no context name, a
    context given twice (one namespace cannot hold two Services of one name), and
    bluegreen:kubeContext's context anywhere but first (the first site keeps the single edge's
    objects there; another site's copy would be a second Service of the same name beside it)."""
    given = {site.name: site.place for site in s.sites.sites}
    if not given:
        return []
    shown = json.dumps(given)
    found = []
    bad = [f"{n}: {p!r}" for n, p in given.items() if not KUBE_CONTEXT.fits(p)]
    if bad:
        found.append(
            refused(
                "edges",
                shown,
                f"on kubernetes each site's place is a kubeconfig context, and {', '.join(bad)} "
                "is not",
                f"give each site {KUBE_CONTEXT.allowed}",
            )
        )
    contexts = list(given.values())
    twice = sorted({c for c in contexts if contexts.count(c) > 1})
    if twice:
        sharing = "; ".join(
            f"{c} is given to {', '.join(n for n, p in given.items() if p == c)}" for c in twice
        )
        found.append(
            refused(
                "edges",
                shown,
                "on kubernetes each site is a kubeconfig context holding one copy of the edge, "
                f"and {sharing}",
                "give each site a context of its own",
            )
        )
    names = list(given)
    if cluster.context in contexts[1:] and contexts[0] != cluster.context:
        here = names[contexts.index(cluster.context)]
        found.append(
            refused(
                "edges",
                shown,
                f"its site {here} is in bluegreen:kubeContext {cluster.context}, where this "
                f"stack's edge is; the first site ({names[0]}) keeps that edge's objects and "
                f"moves them to its own context, and {here}'s copy would collide with them there "
                "until they have moved",
                f"put {here} first, so that it keeps the edge's objects where they are",
            )
        )
    return found
