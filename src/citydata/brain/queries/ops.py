"""运行: the platform's own health. The replica-lag tile is declared but not enabled
(``tiles/ops.toml``): the read replicas report it once they are configured."""

from __future__ import annotations

from citydata.brain.queries import Context, Payload, query


@query("ops.replica_lag")
def replica_lag(ctx: Context) -> Payload:
    return {
        "kind": "figures",
        "figures": [{"key": "lag", "label": "只读副本延迟（秒）", "value": None}],
        "empty": "未配置只读副本",
    }
