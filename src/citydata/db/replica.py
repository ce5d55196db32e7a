"""How far the read replica is behind the primary, for the cockpit and for monitoring.

Measured from both ends: the primary's current WAL position against the position the replica
has replayed (bytes still to apply — during a long transaction, WAL of work not committed yet),
and, while the replica has received WAL it has not replayed, the time since it replayed its
last commit (how old a read there can be); 0 once it has replayed all it was sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from citydata.db.engine import Store

_ON_REPLICA = text(
    "SELECT pg_is_wal_replay_paused(), pg_last_wal_receive_lsn()::text, "
    "pg_last_wal_replay_lsn()::text, "
    "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
)
_BEHIND = text("SELECT pg_wal_lsn_diff(CAST(:primary AS pg_lsn), CAST(:replayed AS pg_lsn))")


def replica_lag(store: Store) -> dict[str, Any]:
    """The replica's lag as JSON-ready figures::

        {"configured": true, "reachable": true, "streaming": true, "paused": false,
         "lag_bytes": 0, "lag_seconds": 0.0, "primary_lsn": "0/3000148",
         "replay_lsn": "0/3000148", "receive_lsn": "0/3000148"}

    ``{"configured": false}`` without a replica (every read is on the primary); ``reachable``
    false with the reason when the replica does not answer."""
    if store.replica is None:
        return {"configured": False}
    if store.replica.dialect.name != "postgresql":
        return {"configured": True, "reachable": True, "streaming": False, "lag_bytes": 0}
    try:
        with store.replica.connect() as conn:
            if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                # a promoted replica, or a URL naming a primary: nothing to lag behind
                return {"configured": True, "reachable": True, "streaming": False}
            paused, received, replayed, since = conn.execute(_ON_REPLICA).one()
        with store.engine.connect() as conn:
            primary = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
            behind = (
                conn.execute(_BEHIND, {"primary": primary, "replayed": replayed}).scalar_one()
                if replayed
                else None
            )
    except Exception as exc:  # a replica that is down is a figure to show, not an error page
        message = str(getattr(exc, "orig", exc)).strip().splitlines()
        return {"configured": True, "reachable": False, "error": message[0] if message else ""}
    lag_bytes = max(int(behind), 0) if behind is not None else None
    return {
        "configured": True,
        "reachable": True,
        "streaming": True,
        "paused": bool(paused),
        "lag_bytes": lag_bytes,
        # Everything received is replayed: not behind, however long ago the last commit was
        # (a long transaction on the primary streams WAL that commits nothing yet).
        "lag_seconds": 0.0
        if lag_bytes == 0 or received == replayed
        else (float(since) if since is not None else None),
        "primary_lsn": primary,
        "replay_lsn": replayed,
        "receive_lsn": received,
    }
