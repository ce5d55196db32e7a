"""The platform's scheduled work, each round run once across every worker and machine
(``mechanisms.schedule``):

- ``webhooks`` every ``CITYDATA_WEBHOOK_SECONDS``: the sharing service's change notices and the
  outbox of docked systems' notices, sent and retried.
- ``brain`` every ``CITYDATA_BRAIN_SECONDS``, and as soon as a commit marks data changed (the
  server makes the round due, ``prompt``): the cockpit's stale summaries recomputed.
- ``themes`` each night at 02:00 (the city's time): the theme databases materialised again from
  the base databases.
- ``retention`` each night at 03:00: audit entries older than ``CITYDATA_AUDIT_YEARS`` dropped
  (whole partitions on PostgreSQL, an anchor keeping the chain verifiable), the next months'
  partitions made ahead, rate windows of past days forgotten."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from citydata.audit import retention
from citydata.bases import themes
from citydata.brain import service as brain
from citydata.clock import city_day
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.keys import Keys
from citydata.mechanisms import outbox, ratelimit
from citydata.mechanisms.schedule import Job
from citydata.share import webhooks

BRAIN = "brain"


def standard(store: Store, settings: Settings, keys: Keys) -> list[Job]:
    allow = settings.webhook_allow_hosts

    def send_notices(now: datetime) -> str:
        shared = webhooks.dispatch(store, now, keys=keys, allow_hosts=allow)
        docked = outbox.dispatch(store, keys, allow, now)
        return (
            f"共享变更通知 {shared.delivered} 条送达、{shared.failed} 条待重试；"
            f"对接系统通知 {docked.delivered} 条送达、{docked.failed} 条待重试"
        )

    def refresh_summaries(now: datetime) -> str:
        done = brain.refresh(store, now)
        return f"刷新驾驶舱摘要 {len(done)} 个"

    def refresh_themes(now: datetime) -> str:
        done = themes.refresh(store, today=city_day(now))
        failed = [t["name"] for t in done if t["error"]]
        return f"刷新主题库 {len(done) - len(failed)} 个" + (
            f"，失败 {'、'.join(failed)}" if failed else ""
        )

    def keep_for_the_period(now: datetime) -> str:
        with store.engine.begin() as conn:
            made = retention.ensure_partitions(conn, city_day(now))
        with store.session() as session:
            removed = retention.prune(session, settings.audit_years, city_day(now), now)
        with store.engine.begin() as conn:
            forgotten = ratelimit.forget(conn, now.timestamp() - 2 * 86400)
        return (
            f"删除 {removed} 条超过 {settings.audit_years} 年的审计记录，"
            f"新建分区 {len(made)} 个，清理 {forgotten} 个过期计数窗口"
        )

    jobs = []
    if settings.webhook_seconds > 0:
        every = timedelta(seconds=settings.webhook_seconds)
        jobs.append(Job("webhooks", send_notices, every=every, lease=timedelta(minutes=2)))
    if settings.brain_seconds > 0:
        every = timedelta(seconds=settings.brain_seconds)
        jobs.append(Job(BRAIN, refresh_summaries, every=every, lease=timedelta(minutes=10)))
    jobs.append(Job("themes", refresh_themes, at=time(2, 0), lease=timedelta(hours=1)))
    jobs.append(Job("retention", keep_for_the_period, at=time(3, 0), lease=timedelta(hours=1)))
    return jobs
