"""Audit retention: whole months dropped on PostgreSQL's partitions (rows deleted on SQLite),
an anchor entry in the chain, entries removed from inside the kept chain stepped over by their
kept hashes — and the attacks on that: a forged removal, a chain start moved by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, text

from citydata.audit import retention
from citydata.audit import service as audit
from citydata.audit.models import AuditEntry, AuditHead, AuditRemoved


def entry(at: datetime, who: str) -> dict:
    return {**audit.people_read(username=who, unit_code=None, action="lookup", class_code=None,
                                query={}), "at": at}  # fmt: skip


JAN = datetime(2020, 1, 10, 4, tzinfo=UTC)
FEB_LAST = datetime(2020, 2, 29, 15, 59, 59, 900000, tzinfo=UTC)  # 23:59:59.9 in Changsha
MAR_FIRST = datetime(2020, 2, 29, 16, 0, 0, 100000, tzinfo=UTC)  # 00:00:00.1 on 1 March
LATER = datetime(2026, 12, 4, 4, tzinfo=UTC)
# a year before 1 March 2021 in the city: the cutoff falls on 1 March 2020, 00:00
TODAY = date(2021, 3, 1)


def chain(store) -> list[int]:
    with store.engine.begin() as conn:  # months made ahead, as the nightly job does
        retention.ensure_partitions(conn, date(2020, 1, 1), ahead=2)
    with store.session() as session:
        # the call begun in February was recorded after March's first
        return audit.append(
            session,
            [entry(JAN, "a"), entry(FEB_LAST - (FEB_LAST - JAN) / 2, "b"), entry(MAR_FIRST, "c"),
             entry(FEB_LAST, "late"), entry(LATER, "d")],
        )  # fmt: skip


def test_retention_drops_old_months_and_the_chain_still_verifies(store):
    ids = chain(store)
    with store.session() as session:
        assert audit.verify(session).ok
        removed = audit.prune(session, 1, TODAY, now=LATER)
    with store.session() as session:
        report = audit.verify(session)
        kept = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
        anchor = session.scalar(select(AuditEntry).where(AuditEntry.action == audit.RETENTION))
        inside = session.scalars(select(AuditRemoved.id)).all()
        head = session.get(AuditHead, audit.HEAD_ID)
    assert report.ok, report.problems
    assert head.first_id == ids[2] == anchor.query["first_kept"]
    if store.engine.dialect.name == "postgresql":
        # January and February went whole, the late February entry with them
        assert removed == 3 and kept == [ids[2], ids[4], anchor.id] and inside == [ids[3]]
        assert anchor.query["partitions"] == ["audit_entries_p202001", "audit_entries_p202002"]
        with store.engine.connect() as conn:
            names = set(retention.partitions(conn, "audit_entries"))
            subject_months = set(retention.partitions(conn, "audit_subjects"))
        assert "audit_entries_p202002" not in names and "audit_entries_p202003" in names
        assert "audit_subjects_p202002" not in subject_months
    else:  # rows before the first kept one: the late February entry stays
        assert removed == 2 and kept == [ids[2], ids[3], ids[4], anchor.id] and inside == []
    assert anchor.query["removed"] == removed and report.entries == len(kept)
    with store.session() as session:  # nothing more to do the same day
        assert audit.prune(session, 1, TODAY, now=LATER) == 0


def test_a_removal_forged_to_hide_a_deleted_entry_is_caught(store):
    ids = chain(store)
    with store.session() as session:
        audit.prune(session, 1, TODAY, now=LATER)
    with store.session() as session:
        anchor = session.scalar(select(AuditEntry.id).where(AuditEntry.action == audit.RETENTION))
        victim = session.get(AuditEntry, ids[4])
        forged = AuditRemoved(
            id=victim.id, prev_hash=victim.prev_hash, entry_hash=victim.entry_hash, anchor_id=anchor
        )
        session.delete(victim)
        session.add(forged)
    with store.session() as session:
        report = audit.verify(session)
    assert {p["problem"] for p in report.problems} == {"removed"}


def test_a_chain_start_moved_by_hand_is_caught(store):
    ids = chain(store)
    with store.session() as session:
        first = session.get(AuditEntry, ids[1])
        session.execute(text("DELETE FROM audit_entries WHERE id = :i"), {"i": ids[0]})
        head = session.get(AuditHead, audit.HEAD_ID)
        head.first_id, head.first_prev_hash = first.id, first.prev_hash
    with store.session() as session:
        report = audit.verify(session)
    assert {p["problem"] for p in report.problems} == {"start"}


def test_partitions_are_made_ahead_and_strays_moved_into_theirs(store):
    with store.session() as session:
        audit.append(session, [entry(datetime(2031, 5, 5, tzinfo=UTC), "stray")])
    with store.engine.begin() as conn:
        made = retention.ensure_partitions(conn, date(2031, 5, 20))
        again = retention.ensure_partitions(conn, date(2031, 5, 20))
    with store.session() as session:
        assert audit.verify(session).ok
    if store.engine.dialect.name != "postgresql":
        assert made == again == []
        return
    assert set(made) == {
        f"audit_{t}_p2031{m:02d}" for t in ("entries", "subjects") for m in (5, 6, 7)
    }
    assert again == []
    with store.engine.connect() as conn:
        held = conn.execute(text("SELECT count(*) FROM audit_entries_p203105")).scalar()
        strays = conn.execute(text("SELECT count(*) FROM audit_entries_default")).scalar()
    assert (held, strays) == (1, 0)
