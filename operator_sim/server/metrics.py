"""Prometheus metrics, one registry per application (no module-level state)."""

from __future__ import annotations

from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)

_SIM_BUCKETS = (0, 1, 5, 30, 60, 120, 300, 600, 900, 1200, 1500, 1800, 3600, float("inf"))


class Metrics:
    """Every metric the server exports. Labels never carry numbers or personal data."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[object, tuple[str, ...]], object] = {}
        r = self.registry
        self.http_requests = Counter(
            "operator_sim_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "operator_sim_http_request_duration_seconds",
            "Real time spent handling a request, by route template.",
            ["route"],
            registry=r,
        )
        self.identification_requests = Counter(
            "operator_sim_identification_requests",
            "Identification requests created, by operator.",
            ["operator_id"],
            registry=r,
        )
        self.answers = Counter(
            "operator_sim_answers",
            "Answers given, by operator, result and whether they met the deadline.",
            ["operator_id", "result", "timely"],
            registry=r,
        )
        self.answer_latency = Histogram(
            "operator_sim_answer_latency_sim_seconds",
            "Simulation seconds from receipt to answer.",
            ["operator_id"],
            buckets=_SIM_BUCKETS,
            registry=r,
        )
        self.deadline_misses = Counter(
            "operator_sim_deadline_misses",
            "Requests not answered within 20 minutes: kind=expired at the deadline, late after it.",
            ["operator_id", "kind"],
            registry=r,
        )
        self.journal_dropped = Counter(
            "operator_sim_journal_dropped",
            "Journal entries dropped, oldest first, to keep the journal within its cap.",
            registry=r,
        )
        self.faults = Counter(
            "operator_sim_fault_rule_hits",
            "Fault rules applied, by rule id.",
            ["rule_id"],
            registry=r,
        )
        self.events = Counter(
            "operator_sim_events",
            "Events written to the outbox, by type.",
            ["type"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "operator_sim_webhook_attempts",
            "Webhook POSTs, by outcome (delivered, retry, failed).",
            ["outcome"],
            registry=r,
        )
        self.deliver_by_missed = Counter(
            "operator_sim_deliver_by_missed",
            "Events first delivered after their deliver_by, by channel.",
            ["channel"],
            registry=r,
        )
        self.retention_pruned = Counter(
            "operator_sim_retention_pruned",
            "Rows removed by retention (--retention), by table.",
            ["table"],
            registry=r,
        )
        self.sms_messages = Counter(
            "operator_sim_sms_messages",
            "SMS messages reaching each status (accepted, sent, delivered, undelivered, "
            "expired, rejected).",
            ["status"],
            registry=r,
        )
        self.scheduled_jobs = Gauge(
            "operator_sim_scheduled_jobs",
            "Scheduled answers and expiries not yet fired (as of the last scheduler pass).",
            registry=r,
        )

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, looked up once (the hot paths count every request)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return cast(M, found)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its duration."""
        self.child(self.http_requests, method, route, str(status)).inc()
        self.child(self.http_duration, route).observe(seconds)
