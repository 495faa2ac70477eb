"""The metric names linky-stream's exporters really export, read from their registries.

``exporter_metric_names()`` is what the rules and dashboards are checked against
(tests/unit/test_monitoring_rules.py). It is the union of the functions in ``EXPORTERS``: to
check a new exporter, add a function returning its names there (the worker, the edge reader and
the customer portal are listed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# Series Prometheus itself adds for every target and for alerting.
PROMETHEUS_NAMES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                    "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE"}


def sample_names(families: Iterable[Any]) -> set[str]:
    """Every sample name a set of prometheus_client metric families exposes."""
    names: set[str] = set()
    for family in families:
        base, kind = family.name, family.type
        if kind == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum", f"{base}_created"}
        elif kind == "summary":
            names |= {base, f"{base}_count", f"{base}_sum", f"{base}_created"}
        elif kind == "info":
            names.add(f"{base}_info")
        else:
            names.add(base)
        names |= {s.name for s in family.samples}
    return names


def worker_names() -> set[str]:
    """The stream worker's ``/metrics``: our metrics and faust's sensors (``linky_faust_*``),
    all in prometheus_client's default registry once the app and its agents are imported."""
    from prometheus_client import REGISTRY

    import stream.app  # noqa: F401  (registers faust's sensors and every agent's metrics)
    import stream.state  # noqa: F401

    return sample_names(REGISTRY.collect())


def edge_names() -> set[str]:
    """The edge reader's ``/metrics`` (teleinfo/metrics.py, one registry per EdgeMetrics)."""
    from teleinfo.metrics import EdgeMetrics

    m = EdgeMetrics()
    m.add_device("probe")  # labelled families expose their samples once a child exists
    return sample_names(m.registry.collect())


def portal_names() -> set[str]:
    """The customer portal's ``/metrics`` (portal/metrics.py, prometheus_client's default
    registry). Labelled families have no sample before their first use, so names come from the
    families: counters as ``*_total``, histograms as their three series."""
    from prometheus_client import REGISTRY

    import portal.metrics  # noqa: F401

    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("linky_portal_"):
            continue
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def recording_rule_names() -> set[str]:
    from deploy.monitoring import rules

    return {r.record for r in rules.records()}


EXPORTERS: list[Callable[[], set[str]]] = [worker_names, edge_names, portal_names]


def exporter_metric_names() -> set[str]:
    """Every name a rule or dashboard may use: exporters, Prometheus's own series, recording rules."""
    names = set(PROMETHEUS_NAMES) | recording_rule_names()
    for exporter in EXPORTERS:
        names |= exporter()
    return names
