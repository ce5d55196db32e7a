"""The demo city's 一格通管: a year of city events in the city's own cells, as they happen.

Citizens describe a problem in their own words — rarely the standard's name for it (they say
"下水道反水", not "下水道堵塞或破损"), sometimes with a place and a complaint around it — and pick a
category in an app that is often wrong; the 监督指挥中心 registers the true one. Inspectors and
departments use the standard's words. Some reports are not city events (voided), some repeat a
nearby open event a few hours later (merged), a few become long-term (挂账). Each unit has its
own habit of handling late and of being sent back to rework. Deadlines come from the categories'
SLA with the working-hours clock. ``truth/grid.json`` holds the assessment as counted here, from
the generator's own arrays; ``truth/grid_events.parquet`` each event's true category."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from citydata.clock import city_midnight
from citydata.db.base import advance_sequences
from citydata.demo.geography import Cells
from citydata.demo.people import phones, pick
from citydata.demo.sources.places import cells, components, points_in_cells
from citydata.grid import sla


def year_of(as_of: date) -> tuple[datetime, datetime]:
    """The demo's year of events: the 365 days up to the moment ``as_of`` begins in Changsha
    (its "now"), so that none lies in the future at any hour of that day."""
    now = city_midnight(as_of)
    return now - timedelta(days=365), now


SOURCES = (["citizen", "inspector", "department", "sensor"], [0.55, 0.35, 0.07, 0.03])
PLACES = [
    "{road}与{road2}交叉口",
    "{road}{n}号门口",
    "{estate}小区门口",
    "{estate}小区东门旁边",
    "{road}公交站附近",
    "{estate}菜市场旁",
    "地铁{line}号线{road}站{exit}出口",
    "{road}{estate}幼儿园对面",
    "",
]
ROADS = [
    "五一",
    "韶山",
    "芙蓉",
    "劳动",
    "解放",
    "八一",
    "湘江",
    "潇湘",
    "麓山",
    "万家丽",
    "人民",
    "车站",
    "黄兴",
    "蔡锷",
    "东风",
    "星沙",
    "金星",
    "岳华",
    "枫林",
    "银盆",
]
ESTATES = [
    "桃花",
    "梅岭",
    "砂子塘",
    "德政园",
    "东塘",
    "左家塘",
    "侯家塘",
    "雨花亭",
    "望月湖",
    "白沙",
    "新河",
    "月湖",
    "洋湖",
    "梅溪湖",
    "星城",
    "锦泰",
]
TAILS = [
    "",
    "，希望尽快处理",
    "，已经好几天了",
    "，很危险",
    "，影响出行",
    "，麻烦管一下",
    "！！",
    "，多次反映没人管",
    "，晚上看不清",
    "。",
]
# How citizens say it: a few of the standard's words, mostly their own.
SAYINGS: dict[str, list[str]] = {
    "B0101": [
        "自来水井盖翘起来了",
        "上水井盖松了踩上去会动",
        "自来水公司的井盖破了一角",
        "供水井盖不见了",
    ],
    "B0102": [
        "污水井盖缺了一块",
        "下水井盖被车压碎了",
        "污水井的盖子移位露出个洞",
        "井盖没了只剩个黑洞",
    ],
    "B0103": [
        "雨水篦子被偷了",
        "雨水井盖陷下去了",
        "路边排水的铁篦子断了",
        "雨水口的盖板松动响得很",
    ],
    "B0114": ["消防栓在漏水", "消火栓被车撞歪了", "消防栓的盖子没了", "消防栓一直往外冒水"],
    "B0201": ["路灯一整排都不亮", "这段路灯坏了黑漆漆的", "路灯一闪一闪的", "路灯杆子歪了灯也不亮"],
    "B0204": [
        "红绿灯坏了一直闪黄灯",
        "信号灯不亮路口乱成一锅粥",
        "红灯时间特别长好像故障了",
        "人行横道的绿灯不亮",
    ],
    "B0209": ["公交站亭的玻璃碎了", "候车亭的顶棚漏雨", "站牌被撞倒了", "公交站的座椅坏了"],
    "B0301": ["垃圾桶满了溢出来", "果皮箱被人弄坏了", "路边的垃圾箱盖子没了", "分类垃圾桶臭得不行"],
    "B0302": ["公厕没水冲不了", "公共厕所里面很臭", "厕所门锁坏了", "公厕灯不亮还脏"],
    "B0403": ["行道树倒了压在路上", "大树枝断了吊在半空", "台风把树刮倒了", "树歪得厉害快倒了"],
    "E0101": ["楼顶在加盖房子", "有人在绿地上搭棚子", "一楼住户往外扩建围墙", "违章搭了个铁皮屋"],
    "E0102": [
        "路边一堆垃圾没人清理",
        "有人乱倒生活垃圾",
        "垃圾扔了一地苍蝇很多",
        "草丛里堆满了垃圾袋",
    ],
    "E0103": [
        "路边堆了很多建筑渣土",
        "装修垃圾堆在楼道口",
        "渣土堆了半个月没人运走",
        "砖头水泥块堆在人行道",
    ],
    "E0104": ["路面全是油污很滑", "马路上全是泥巴", "人行道很脏没人扫", "路上洒了一地的污水"],
    "E0111": ["下雨后路上积水很深", "地下通道淹水了", "路口积水车过去溅一身", "小区门口内涝走不了"],
    "E0201": [
        "电线杆上贴满了办证广告",
        "墙上喷了很多电话号码",
        "楼道里到处是牛皮癣",
        "小广告贴得满墙都是",
    ],
    "E0202": [
        "店铺招牌快掉下来了",
        "路边拉了很多横幅",
        "广告牌歪了很危险",
        "商家在人行道上立大广告牌",
    ],
    "E0301": [
        "工地半夜还在施工吵得睡不着",
        "凌晨打桩声音太大",
        "工地机器轰隆隆一整天",
        "夜里还在浇混凝土",
    ],
    "E0302": ["工地灰尘很大没有洒水", "拆房子扬尘满天飞", "工地裸土没有盖网", "风一吹工地上全是灰"],
    "E0303": [
        "渣土车一路撒土",
        "运砂车漏了一路的沙子",
        "泥头车掉下来很多泥",
        "货车撒漏的东西铺满马路",
    ],
    "E0401": ["路面突然塌了一个大坑", "路中间陷下去了", "人行道塌陷了很危险", "马路下沉裂开了"],
    "E0402": [
        "自来水管爆了水往外喷",
        "路边水管破了一直冒水",
        "地下水管破裂路面冒水",
        "爆管了整条街停水",
    ],
    "E0404": ["下水道堵了污水漫出来", "下水道反水臭死了", "污水从井里冒出来", "排污管堵塞满地污水"],
    "E0406": ["路面坑坑洼洼的", "马路上有好几个大坑", "人行道砖头翘起来绊人", "路面开裂骑车很颠"],
    "E0501": [
        "路口有流动摊贩卖水果",
        "小贩推车在路边摆摊",
        "一堆人在天桥上摆地摊",
        "游商占着人行道卖东西",
    ],
    "E0502": ["店家把货摆到门外人行道", "饭店在门口摆桌子", "商铺出店经营占道", "修车铺在店外修车"],
    "E0505": ["汽车停在人行道上", "小车乱停把消防通道堵了", "路边违停一排车", "车子停在盲道上"],
    "E0506": ["共享单车堆满了路口", "电动车乱停挡住了门口", "单车倒了一地", "自行车停在盲道上"],
    "E0508": [
        "晚上有人在路边烧烤油烟很大",
        "露天烧烤烟熏到楼上",
        "夜宵摊在外面烤串",
        "烧烤摊浓烟滚滚",
    ],
    "E0511": ["广场舞音响太吵", "商店喇叭一直在喊", "半夜有人在楼下唱歌", "酒吧音乐声音太大"],
}
INSPECTOR_WORDS = "监督员巡查发现："
LATE_BY_UNIT = {"cscg": 0.06, "cszj": 0.18, "cssl": 0.10, "csga": 0.08, "csjt": 0.12}
REWORK_BY_UNIT = {"cscg": 0.04, "cszj": 0.12, "cssl": 0.06, "csga": 0.03, "csjt": 0.08}


def _description(rng: np.random.Generator, code: str, source: str) -> str:
    found = sla.category(code)
    assert found is not None
    place = str(pick(rng, PLACES, 1)[0]).format(
        road=pick(rng, ROADS, 1)[0] + "路",
        road2=pick(rng, ROADS, 1)[0] + "路",
        estate=pick(rng, ESTATES, 1)[0],
        n=int(rng.integers(1, 400)),
        line=int(rng.integers(1, 7)),
        exit="ABCD"[int(rng.integers(0, 4))],
    )
    if source == "citizen":
        words = SAYINGS.get(code) or [found.name]
        return f"{place}{pick(rng, words, 1)[0]}{pick(rng, TAILS, 1)[0]}"
    return f"{INSPECTOR_WORDS}{place}{found.name}" if source == "inspector" else found.name


def _after(start: datetime, limit: tuple[int, str], fraction: float) -> datetime:
    """``fraction`` of the way from ``start`` to its deadline (past it when above 1)."""
    due = sla.deadline(start, *limit)
    return start + (due - start) * fraction


def generate(out: Path, people_count: int, seed: int, as_of: date) -> dict[str, int]:
    rng = np.random.default_rng(seed + 19)  # its own stream: the other files stay as they were
    year_start, now = year_of(as_of)
    n = max(2000, people_count // 10)
    grid = cells(people_count)
    places = points_in_cells(people_count, n, rng)
    # the city's components by category: a sensor on a component, and most inspectors standing
    # at one, report it by its 部件标识码 from where it stands; citizens never know the code
    inventory = {
        code: group.select("component_id", "longitude", "latitude").rows()
        for (code,), group in components(people_count, seed).group_by("category")
    }
    codes = [c for c in sla.categories() if c != "E0601"]
    truth = pick(rng, codes, n)
    sources = pick(rng, SOURCES[0], n, SOURCES[1])
    seconds = np.sort(
        rng.integers(0, 365 * 86400, n)
    )  # in time order: a repeat follows its original
    # reports come by day, Beijing time: fold the night hours into the day
    reported = []
    for s in seconds:
        moment = year_start + timedelta(seconds=int(s))
        local_hour = (moment + sla.BEIJING).hour
        if local_hour < 7 or local_hour >= 22:
            moment += timedelta(hours=9)
        reported.append(moment)
    fate = rng.random(n)
    duplicate_of = np.full(n, -1)
    events: list[dict] = []
    steps: list[dict] = []
    latest: dict[str, list[int]] = {}  # category -> its events so far
    phone_numbers = phones(rng, n).to_list()
    for i in range(n):
        code, source, t0 = str(truth[i]), str(sources[i]), reported[i]
        if t0 > now:
            t0 = now - timedelta(hours=1)
        found = sla.category(code)
        assert found is not None
        limits = found.limits
        unit = found.unit
        history: list[tuple[str, datetime, str, str | None]] = [("reported", t0, "", None)]
        # a repeat of an earlier report of the same problem, nearby, while it is still open
        if source == "citizen" and fate[i] < 0.08:
            open_ones = [
                j
                for j in latest.get(code, [])
                if events[j]["open_until"] > t0 and events[j]["duplicate_of"] is None
            ]
            if open_ones:
                duplicate_of[i] = open_ones[-1]
        if duplicate_of[i] >= 0:
            original = events[duplicate_of[i]]
            merged = min(t0 + timedelta(minutes=20), original["open_until"])
            history.append(("voided", merged, f"重复上报，已并入事件 #{duplicate_of[i] + 1}", None))
            lon = original["longitude"] + rng.uniform(-0.0003, 0.0003)
            lat = original["latitude"] + rng.uniform(-0.0002, 0.0002)
        else:
            lon, lat = places["longitude"][i], places["latitude"][i]
        component = None
        at_component = source == "sensor" or (source == "inspector" and rng.random() < 0.7)
        if duplicate_of[i] < 0 and code in inventory and at_component:
            component, lon, lat = inventory[code][int(rng.integers(0, len(inventory[code])))]
            lon, lat = lon + rng.uniform(-5e-5, 5e-5), lat + rng.uniform(-5e-5, 5e-5)
        if duplicate_of[i] < 0 and fate[i] > 0.97:
            history.append(("voided", t0 + timedelta(minutes=30), "经核实不属于城市管理问题", None))
        elif duplicate_of[i] < 0:
            registered = t0 + timedelta(minutes=float(rng.uniform(5, 60)))
            history.append(("registered", registered, "", None))
            if fate[i] > 0.96:
                history.append(
                    ("suspended", registered + timedelta(hours=2), "需纳入改造计划，挂账", None)
                )
            else:
                dispatched = _after(registered, limits["dispatch"], rng.uniform(0.05, 0.9))
                history.append(("dispatched", dispatched, "类别默认单位", unit))
                late = rng.random() < LATE_BY_UNIT.get(unit, 0.1)
                share = rng.uniform(1.05, 3.6) if late else rng.uniform(0.1, 0.95)
                handled = _after(dispatched, limits["handle"], share)
                history.append(("handling", dispatched + (handled - dispatched) * 0.2, "", unit))
                history.append(("handled", handled, "已处置", unit))
                checked = _after(handled, limits["verify"], rng.uniform(0.1, 0.9))
                if rng.random() < REWORK_BY_UNIT.get(unit, 0.05):
                    history.append(("rework", checked, "现场核查未处置到位", None))
                    again = _after(checked, limits["handle"], rng.uniform(0.1, 0.8))
                    history.append(("handled", again, "已重新处置", unit))
                    checked = _after(again, limits["verify"], rng.uniform(0.1, 0.9))
                history.append(("verified", checked, "", None))
                history.append(("closed", checked + timedelta(minutes=10), "", None))
        history = [h for h in history if h[1] < now]
        open_until = history[-1][1] if history[-1][0] in {"closed", "voided"} else now
        events.append(
            {
                "id": i + 1,
                "category": code,
                "source": source,
                "channel": "open311"
                if source == "citizen"
                else "docked"
                if source == "department"
                else "page",
                "description": _description(rng, code, source),
                "longitude": round(float(lon), 6),
                "latitude": round(float(lat), 6),
                "reported_at": t0,
                "open_until": open_until,
                "duplicate_of": int(duplicate_of[i]) + 1 if duplicate_of[i] >= 0 else None,
                "component_id": component,
                # the app's category: the component's code says it; people pick, often wrongly
                "chosen": code if component or rng.random() > 0.15 else str(pick(rng, codes, 1)[0]),
                # the 监督指挥中心 registers the true category (a repeat keeps its original's)
                "registered_as": code
                if duplicate_of[i] >= 0 or any(h[0] == "registered" for h in history)
                else None,
                "phone": phone_numbers[i] if source == "citizen" else "",
            }
        )
        latest.setdefault(code, []).append(i)
        for status, at, note, by_unit in history:
            steps.append(
                {"event_id": i + 1, "status": status, "at": at, "note": note, "unit_code": by_unit}
            )
    frame = pl.DataFrame(events, infer_schema_length=None).drop("open_until")
    step_frame = pl.DataFrame(steps, infer_schema_length=None)
    folder = out / "grid"
    folder.mkdir(parents=True, exist_ok=True)
    frame.drop("category").write_parquet(folder / "events.parquet")  # what was reported
    step_frame.write_parquet(folder / "steps.parquet")
    frame.select("id", "category", "description").write_parquet(
        out / "truth" / "grid_events.parquet"
    )
    (out / "truth" / "grid.json").write_text(
        json.dumps(assessment_truth(frame, step_frame, grid, now), ensure_ascii=False, indent=1)
        + "\n",
        encoding="utf-8",
    )
    return {"events": frame.height, "steps": step_frame.height}


def assessment_truth(
    events: pl.DataFrame, steps: pl.DataFrame, grid: Cells, now: datetime
) -> dict[str, Any]:
    """Per cell (with its district, street and community), from the generator's arrays: 立案数,
    按期处置率, 结案率, 返工率."""
    per_event = steps.group_by("event_id").agg(
        registered=(pl.col("status") == "registered").any(),
        closed=(pl.col("status") == "closed").any(),
        reworked=(pl.col("status") == "rework").any(),
        handled=(pl.col("status") == "handled").any(),
        last_handled=pl.col("at").filter(pl.col("status") == "handled").max(),
    )
    # the handle clock starts at the last 派遣 or 返工 before the last 处置反馈
    clock_starts = (
        steps.filter(pl.col("status").is_in(["dispatched", "rework"]))
        .join(per_event.select("event_id", "last_handled"), on="event_id")
        .filter(pl.col("at") < pl.col("last_handled"))
        .group_by("event_id")
        .agg(starts=pl.col("at").max())
    )
    joined = per_event.join(
        events.select(pl.col("id").alias("event_id"), "category"), on="event_id"
    ).join(clock_starts, on="event_id", how="left")
    late: dict[int, bool | None] = {}
    for row in joined.iter_rows(named=True):  # the working-hours calendar is scalar
        if not row["handled"]:
            late[row["event_id"]] = None
            continue
        limit = sla.categories()[row["category"]].limits["handle"]
        late[row["event_id"]] = row["last_handled"] > sla.deadline(row["starts"], *limit)
    per_event = per_event.with_columns(
        late=pl.col("event_id").replace_strict(late, return_dtype=pl.Boolean)
    )
    located = events.select(pl.col("id").alias("event_id"), "longitude", "latitude")
    table = per_event.join(_cells_of(located, grid), on="event_id").filter(pl.col("registered"))
    counts = table.group_by("grid_code", "division", "street", "community").agg(
        registered=pl.len(),
        handled=pl.col("handled").sum(),
        on_time=(pl.col("handled") & ~pl.col("late").fill_null(True)).sum(),
        closed=pl.col("closed").sum(),
        reworked=(pl.col("handled") & pl.col("reworked")).sum(),
    )
    # counts per cell, so that a figure can be summed over the cells a platform knows
    return {
        "now": now.isoformat(),
        "by_cell": {
            r["grid_code"]: {k: v for k, v in r.items() if k != "grid_code"}
            for r in counts.sort("grid_code").iter_rows(named=True)
        },
    }


def _cells_of(points: pl.DataFrame, grid: Cells) -> pl.DataFrame:
    """Each point's cell, district, street and community, by the platform's own rule (the
    smallest code among the cells that hold it, on the outlines as the spatial base holds
    them): points by the thousand against the cells' tree at once, never a loop over points."""
    placed = grid.grid.locate(points["longitude"].to_numpy(), points["latitude"].to_numpy())
    where = grid.frame.select("grid_code", "street", "community")
    return (
        points.select("event_id")
        .with_columns(placed["grid_code"], placed["division"])
        .join(where, on="grid_code", how="left", maintain_order="left")
    )


# ---------------------------------------------------------------- loading


class _Derived:
    """An event's derived fields, advanced step by step with the grid's own rule."""

    status = ""
    stage = ""
    stage_started = due_at = late_at = closed_at = updated_at = None
    handled_late = None
    reworks = 0


def load(store, directory: Path, keys, as_of: date) -> dict[str, Any]:
    """Cells from the spatial base, the year of events (placed in their cells by the spatial
    join), their steps, reporters and routing decisions, the classifier trained on the
    registered citizens' reports, and the events in the 事件基础库. Done once."""
    from sqlalchemy import func, insert, select

    from citydata.grid import cells, classify, events, publishing
    from citydata.grid.models import Event, Reporter, Routing, Step
    from citydata.mechanisms import changes

    folder = directory / "grid"
    if not (folder / "events.parquet").exists():
        return {}
    with store.session() as session:
        n_cells = cells.sync(session)
        if session.scalar(select(func.count()).select_from(Event)):
            return {}
        grid = cells.locator(session)
        frame = pl.read_parquet(folder / "events.parquet")
        placed = grid.locate(frame["longitude"].to_numpy(), frame["latitude"].to_numpy())
        frame = pl.concat([frame, placed], how="horizontal")
        # a cell whose row a planted error kept out of the spatial base has no polygon: its
        # events cannot be placed, and are counted as such rather than loaded somewhere else
        unplaced = frame.filter(pl.col("grid_code").is_null()).height
        frame = frame.filter(pl.col("grid_code").is_not_null())
        steps = pl.read_parquet(folder / "steps.parquet").filter(
            pl.col("event_id").is_in(frame["id"].implode())
        )
        start = session.scalar(select(func.max(Event.id))) or 0
        frame = frame.with_columns(
            category=pl.coalesce("registered_as", "chosen"),
            event_no=pl.lit(events.REGION)
            + (pl.col("reported_at") + pl.duration(hours=8)).dt.strftime("%Y%m%d")
            + (pl.col("id") + start).cast(pl.String).str.zfill(8),
        )
        year_start, _ = year_of(as_of)
        versions = {
            code: sla.current(session, code, year_start) for code in frame["category"].unique()
        }
        numbers = dict(zip(frame["id"], frame["event_no"], strict=True))
        by_event: dict[int, list[dict]] = {}
        for row in steps.sort("event_id", "at").iter_rows(named=True):
            by_event.setdefault(row["event_id"], []).append(row)
        rows, step_rows, reporter_rows, routing_rows = [], [], [], []
        for e in frame.iter_rows(named=True):
            version = versions[e["category"]]
            derived = _Derived()
            unit = None
            for s in by_event.get(e["id"], []):
                events.advance(derived, s["status"], s["at"], events.limits_of(version))
                unit = s["unit_code"] or unit
                note = s["note"]
                if e["duplicate_of"] and s["status"] == "voided":
                    note = f"重复上报，已并入事件 {numbers.get(e['duplicate_of'], '')}"
                step_rows.append(
                    {
                        "event_id": e["id"] + start,
                        "status": s["status"],
                        "actor": "市民"
                        if s["status"] == "reported" and e["source"] == "citizen"
                        else "监督指挥中心"
                        if not s["unit_code"]
                        else s["unit_code"],
                        "unit_code": s["unit_code"],
                        "longitude": e["longitude"]
                        if s["status"] in {"reported", "handled", "verified"}
                        else None,
                        "latitude": e["latitude"]
                        if s["status"] in {"reported", "handled", "verified"}
                        else None,
                        "note": note,
                        "at": s["at"],
                    }
                )
                if s["status"] == "dispatched":
                    routing_rows.append(
                        {
                            "event_id": e["id"] + start,
                            "unit_code": s["unit_code"],
                            "rule": "类别默认单位",
                            "by": "监督指挥中心",
                            "reason": "",
                            "at": s["at"],
                        }
                    )
            merged_into = e["duplicate_of"] + start if e["duplicate_of"] else None
            rows.append(
                {
                    "id": e["id"] + start,
                    "event_no": e["event_no"],
                    "token": f"demo{e['id'] + start:028d}",
                    "category": e["category"],
                    "sla_id": version.id,
                    "source": e["source"],
                    "channel": e["channel"],
                    "description": e["description"],
                    "address": "",
                    "longitude": e["longitude"],
                    "latitude": e["latitude"],
                    "grid_code": e["grid_code"],
                    "division": e["division"],
                    "component_id": e["component_id"],
                    "status": derived.status,
                    "unit_code": unit,
                    "duplicate_of": merged_into,
                    "suggested": [],
                    "reworks": derived.reworks,
                    "reported_at": e["reported_at"],
                    "updated_at": derived.updated_at,
                    "stage": derived.stage,
                    "stage_started": derived.stage_started,
                    "due_at": derived.due_at,
                    "late_at": derived.late_at,
                    "handled_late": derived.handled_late,
                    "closed_at": derived.closed_at,
                }
            )
            reporter_rows.append(
                {
                    "event_id": merged_into or e["id"] + start,
                    "via_event_id": e["id"] + start,
                    "kind": e["source"],
                    "name": "",
                    "contact": keys.encrypt(e["phone"]) if e["phone"] else "",
                    "told_at": derived.updated_at
                    if derived.status in {"closed", "voided"}
                    else None,
                }
            )
        session.execute(insert(Event), rows)
        advance_sequences(session, Event)
        session.execute(insert(Step), step_rows)
        session.execute(insert(Reporter), reporter_rows)
        if routing_rows:
            session.execute(insert(Routing), routing_rows)
        changes.mark(session, "grid")  # a year of events at once, past their steps
    with store.session() as session:
        model = classify.train_from_events(session)
        trained = {
            "samples": model.samples,
            "accuracy": model.accuracy,
            "baseline": model.baseline_accuracy,
        }
    report = publishing.publish(store)
    return {
        "cells": n_cells,
        "events": len(rows),
        "unplaced": unplaced,
        "steps": len(step_rows),
        "classifier": trained,
        "event_base_rows": report.rows_accepted if report else 0,
    }
