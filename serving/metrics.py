"""Prometheus metrics at GET /metrics: request counts and latencies by endpoint, the model version
each worker serves, and what personalization the served offers actually had.

One process (`trustrec serve`, tests): each app has its own registry. Several gunicorn workers:
with PROMETHEUS_MULTIPROC_DIR set (serving/gunicorn_conf.py sets it), every worker writes its
values to files there and a scrape of any worker reads them all, so counts cover every worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Requests take about a millisecond; the buckets resolve that range and show the slow tail.
disable_created_metrics()  # a *_created series per label set is noise next to the counts

BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
           0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values live in files, not in a registry: registering would make a
        # second app in the same process fail on duplicate names.
        registry = None if self.multiprocess else CollectorRegistry()
        self._registry = registry
        self.requests = Counter(
            "trustrec_http_requests", "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram(
            "trustrec_http_request_duration_seconds", "Time to answer a request, by endpoint",
            ["endpoint"], buckets=BUCKETS, registry=registry)
        self.model = Gauge(
            "trustrec_model_info", "1 for the model version a worker serves",
            ["version"], registry=registry, multiprocess_mode="liveall")
        self.served = Counter(
            "trustrec_offers_responses", "Offer responses by the personalization applied",
            ["personalization"], registry=registry)
        self.fail_closed = Counter(
            "trustrec_consent_unavailable", "Requests served without personal data because the "
            "consent record could not be read", registry=registry)
        self._version: str | None = None

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def serving(self, version: str) -> None:
        if version != self._version:
            if self._version is not None:
                self.model.labels(self._version).set(0)
            self.model.labels(version).set(1)
            self._version = version

    def exposition(self) -> tuple[bytes, str]:
        registry = self._registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
