"""The mechanisms under the exact limits, hit from many threads at once on both stores: shared
rate windows, named locks held until commit, and scheduled rounds claimed once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from citydata.accounts.models import AuthFailure
from citydata.accounts.service import Throttle
from citydata.mechanisms import ratelimit, schedule
from citydata.mechanisms.locks import hold


def together(n: int, work) -> None:
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        work(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_shared_windows_let_exactly_the_limit_through_from_many_threads(store):
    now = time.time()
    seeded = []

    def seed(_conn) -> int:
        seeded.append(1)
        time.sleep(0.005)  # widen the race for the window's first row
        return 3

    day = ratelimit.Window("test_day", "k", 40, 86400, 28800, seed=seed)
    minute = ratelimit.Window("test_minute", "k", 10**6)
    passed: list[bool] = []
    together(60, lambda _i: passed.append(ratelimit.take(store, [day, minute], now) is None))
    assert passed.count(True) == 40 - 3  # three calls were made before the window had a row
    assert seeded  # and the audit log was asked for them
    # a full window gives the call back that the other windows had counted
    with store.engine.connect() as conn:
        used = dict(
            conn.execute(select(ratelimit._t.c.scope, ratelimit._t.c.used)).all()  # noqa: SLF001
        )
    assert used == {"test_day": 40, "test_minute": 37}
    later = now + 86400  # the next day starts again from one
    assert ratelimit.take(store, [day], later) is None


def test_shared_windows_answer_the_wait_until_the_next_window(store):
    windows = ratelimit.SharedWindows(store, "test_open")
    at = 1_800_000_010.0  # ten seconds into a minute
    assert [windows.take("1.2.3.4", 2, at) for _ in range(3)] == [None, None, 50]
    assert windows.take("5.6.7.8", 2, at) is None  # another key has its own window
    assert windows.take("1.2.3.4", 2, at + 60) is None


def test_a_throttle_counts_every_concurrent_failure_before_judging_the_next(store):
    throttle = Throttle("test_login", 5, timedelta(minutes=15))
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    verdicts: list[int] = []

    def guess(_i: int) -> None:
        with store.session() as session:
            wait = throttle.wait(session, "zhang", now)
            verdicts.append(wait)
            if not wait:
                time.sleep(0.01)  # the password check
                throttle.fail(session, "zhang", now)

    together(30, guess)
    assert verdicts.count(0) == 5
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(AuthFailure)) == 5


def test_a_lock_is_let_go_when_the_transaction_ends_committed_or_not(store):
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        session = store.sessions()
        hold(session, "job")
        first_holds.set()
        time.sleep(0.2)
        order.append("first done")
        session.rollback()
        session.close()

    def second() -> None:
        first_holds.wait()
        with store.session() as session:
            hold(session, "job")
            order.append("second in")

    together(2, lambda i: (first, second)[i]())
    assert order == ["first done", "second in"]
    with store.session() as session:  # nothing is left held
        hold(session, "job")


def test_a_scheduled_round_is_claimed_by_exactly_one_of_many(store):
    ran: list[int] = []
    job = schedule.Job("test_round", lambda now: f"ran {len(ran)}", every=timedelta(seconds=10))
    t0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert not schedule.claim(store, job, t0, "first look")  # first seen: due in ten seconds
    due = t0 + timedelta(seconds=11)
    together(20, lambda i: ran.append(i) if schedule.claim(store, job, due, f"w{i}") else None)
    assert len(ran) == 1
    winner = f"w{ran[0]}"
    # while it runs (its lease), the next round is not started by anyone else
    assert not schedule.claim(store, job, due + timedelta(seconds=11), "other")
    assert schedule.run(store, job, due, winner) == (True, "ran 1")
    assert schedule.claim(store, job, due + timedelta(seconds=11), "other")
    failing = schedule.Job("test_round", lambda now: 1 / 0)
    assert schedule.run(store, failing, due, "other")[0] is False
    (row,) = [r for r in schedule.status(store) if r["name"] == "test_round"]
    assert (row["runs"], row["failures"], row["holder"]) == (2, 1, "other")
    assert "ZeroDivisionError" in row["outcome"] and row["running_until"] is None


def test_daily_work_is_due_at_its_time_in_the_city():
    job = schedule.Job("nightly", lambda now: "", at=datetime.min.time().replace(hour=2))
    # 20:00 in Changsha on 4 December: next due 02:00 on the 5th, which is 18:00 UTC on the 4th
    assert job.next_due(datetime(2026, 12, 4, 12, tzinfo=UTC)) == datetime(
        2026, 12, 4, 18, tzinfo=UTC
    )
    # 01:00 in Changsha (17:00 UTC the day before): the same night's 02:00
    assert job.next_due(datetime(2026, 12, 4, 17, tzinfo=UTC)) == datetime(
        2026, 12, 4, 18, tzinfo=UTC
    )


def test_a_poked_job_is_due_at_once_and_runs_once(store):
    job = schedule.Job("test_poked", lambda now: "ok", every=timedelta(hours=1))
    t0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
    schedule.poke(store, job, t0)  # never seen before: due now
    assert schedule.claim(store, job, t0, "a") and not schedule.claim(store, job, t0, "b")
    schedule.run(store, job, t0, "a")
    assert not schedule.claim(store, job, t0, "b")  # next due in an hour
    schedule.poke(store, job, t0)  # data changed: due again now, once
    assert schedule.claim(store, job, t0, "b") and not schedule.claim(store, job, t0, "a")
