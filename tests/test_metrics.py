"""``/metrics``: Prometheus' text format with request rates and latencies by route, the audit
writer's lag, queues and scheduled jobs — answered to a scraper on this machine or one with
the token, and to nobody else."""

from __future__ import annotations

import re

import httpx
import pytest

from citydata.app import create_app
from citydata.config import Settings
from conftest import fixed_clock
from sharing import PEOPLE, WHO, granted

LOOKUP = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}


def figure(text: str, name: str, **labels: str) -> float:
    """The value of one sample (summed over any labels not named)."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total, found = total + float(m.group(2)), True
    assert found, f"{name} {labels} not in the metrics"
    return total


@pytest.fixture
def served(city, people, live_server):
    def serve(**settings):
        app = create_app(
            city,
            Settings(database_url=city.url, secret_key="test-secret", **settings),
            clock=fixed_clock,
        )
        return live_server(app)

    return serve


def test_metrics_report_requests_latency_audit_lag_queues_and_jobs(city, served):
    base = served()
    headers = {"Authorization": granted(city)["Authorization"], **WHO}
    for _ in range(3):
        assert (
            httpx.post(f"{base}/api/share/v1/lookup", json=LOOKUP, headers=headers).status_code
            == 200
        )
    assert httpx.get(f"{base}/grid/events/12345", follow_redirects=False).status_code in (303, 404)
    text = httpx.get(f"{base}/metrics").text
    lookup = {"method": "POST", "route": "/api/share/v1/lookup"}
    assert figure(text, "citydata_http_requests_total", status="200", **lookup) >= 3
    assert figure(text, "citydata_http_request_seconds_count", **lookup) >= 3
    assert figure(text, "citydata_audit_commit_seconds_count") >= 3
    # a path's values are not labels: the route's template is
    assert "12345" not in text and 'route="/grid/events/{' in text
    assert figure(text, "citydata_audit_entries") >= 3
    assert figure(text, "citydata_webhook_notices_waiting") == 0
    assert "citydata_job_failures" in text


def test_metrics_answer_only_this_machine_or_the_token(served):
    base = served()
    assert httpx.get(f"{base}/metrics").status_code == 200
    # through a proxy on this machine, the request is the world's
    forwarded = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forwarded.status_code == 404 and "citydata" not in forwarded.text

    guarded = served(metrics_token="scrape-token-123")
    assert httpx.get(f"{guarded}/metrics").status_code == 404
    wrong = {"Authorization": "Bearer scrape-token-12"}
    assert httpx.get(f"{guarded}/metrics", headers=wrong).status_code == 404
    right = {"Authorization": "Bearer scrape-token-123", "X-Forwarded-For": "203.0.113.9"}
    answer = httpx.get(f"{guarded}/metrics", headers=right)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
