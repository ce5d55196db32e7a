"""What the platform reports to Prometheus (text format at ``/metrics``):

- requests per method, route and status, and their latency (``citydata_http_*``);
- the audit writer: how long an entry waits from the call handing it over until its group is
  committed (``citydata_audit_commit_seconds``, the audit lag a caller feels) and how many wait;
- queues and lags read from the database when scraped, the same whichever worker answers:
  webhook notices waiting and the oldest one's age, batches running, the audit chain's length
  and the age of its newest entry, and each scheduled job's last success, failures and whether
  it is running.

Several workers on one machine share their counts through files in ``PROMETHEUS_MULTIPROC_DIR``
(``citydata serve --workers`` sets it), so any worker answers for all of them. Each machine is
scraped on its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from citydata.audit.models import AuditEntry, AuditHead
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.ingest.models import Batch
from citydata.mechanisms import schedule
from citydata.mechanisms.models import WebhookNotice

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "citydata_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "citydata_http_request_seconds",
    "Time from a request's arrival until its answer was sent",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
AUDIT_COMMIT = Histogram(
    "citydata_audit_commit_seconds",
    "Time from a call handing its audit entry to the writer until the entry was committed",
    buckets=LATENCY_BUCKETS,
)
AUDIT_WAITING = Gauge(
    "citydata_audit_waiting",
    "Audit entries handed to the writer and not yet committed",
    multiprocess_mode="livesum",
)


def observe_audit(waited: list[float], still_waiting: int) -> None:
    """``AuditLog``'s report after each committed group."""
    for seconds in waited:
        AUDIT_COMMIT.observe(seconds)
    AUDIT_WAITING.set(still_waiting)


class StoreFigures:
    """Queue lengths and lags, read from the database at each scrape."""

    def __init__(self, store: Store, now: datetime):
        self.store, self.now = store, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.now
        with self.store.session() as session:
            pending, oldest = session.execute(
                select(func.count(), func.min(WebhookNotice.created_at)).where(
                    WebhookNotice.delivered_at.is_(None)
                )
            ).one()
            running = session.scalar(
                select(func.count()).select_from(Batch).where(Batch.status == "running")
            )
            last_id = session.scalar(select(AuditHead.last_id)) or 0
            newest = (
                session.scalar(select(AuditEntry.at).where(AuditEntry.id == last_id))
                if last_id
                else None
            )
        yield _gauge(
            "citydata_webhook_notices_waiting", "Webhook notices not yet delivered", pending
        )
        yield _gauge(
            "citydata_webhook_oldest_waiting_seconds",
            "Age of the oldest webhook notice not yet delivered",
            (now - as_utc(oldest)).total_seconds() if oldest else 0,
        )
        yield _gauge("citydata_batches_running", "Aggregation batches being written", running)
        yield _gauge("citydata_audit_entries", "Entries the audit chain has had", last_id)
        yield _gauge(
            "citydata_audit_newest_entry_age_seconds",
            "Age of the audit chain's newest entry",
            (now - as_utc(newest)).total_seconds() if newest else 0,
        )
        ok = GaugeMetricFamily(
            "citydata_job_last_success_age_seconds",
            "Seconds since each scheduled job last ran (its outcome not a failure)",
            labels=["job"],
        )
        failures = GaugeMetricFamily(
            "citydata_job_failures", "Failed rounds of each scheduled job", labels=["job"]
        )
        busy = GaugeMetricFamily(
            "citydata_job_running", "Whether a round of the job is running", labels=["job"]
        )
        for job in schedule.status(self.store):
            if job["finished_at"] is not None:
                ok.add_metric([job["name"]], (now - job["finished_at"]).total_seconds())
            failures.add_metric([job["name"]], job["failures"])
            running = job["running_until"] is not None and job["running_until"] > now
            busy.add_metric([job["name"]], 1 if running else 0)
        yield from (ok, failures, busy)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))


def exposition(store: Store, now: datetime) -> bytes:
    """Everything above in Prometheus' text format."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS):
        MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, LATENCY, AUDIT_COMMIT, AUDIT_WAITING):
            registry.register(collector)
    registry.register(StoreFigures(store, now))
    return generate_latest(registry)
