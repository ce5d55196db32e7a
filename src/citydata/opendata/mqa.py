"""Metadata quality the way data.europa.eu's Metadata Quality Assessment scores it: five FAIR
dimensions, 405 points, four bands. Each indicator is scored on what this portal's DCAT
(``dcat.add_dataset``) actually says about the dataset — a property we do not publish scores
nothing, and its hint says what would earn the points.

| dimension | indicator (weight) |
| --- | --- |
| Findability 100 | dcat:keyword 30, dcat:theme 30, dct:spatial 20, dct:temporal 20 |
| Accessibility 100 | dcat:accessURL answering 50, dcat:downloadURL 20, downloadURL answering 30 |
| Interoperability 110 | dct:format 20, dcat:mediaType 10, format/media type from a vocabulary 10, non-proprietary format 20, machine-readable format 20, DCAT-AP compliance 30 |
| Reusability 75 | dct:license 20, licence from the EU vocabulary 10, dct:accessRights 10, access rights from the EU vocabulary 5, dcat:contactPoint 20, dct:publisher 10 |
| Contextuality 20 | dct:rights 5, dcat:byteSize 5, dct:issued 5, dct:modified 5 |

Bands: 优秀 Excellent 351–405, 良好 Good 221–350, 一般 Sufficient 121–220, 较差 Bad 0–120. As in
the MQA, interoperability counts the dataset's best distribution (ours are CSV, XLSX, JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citydata.opendata.datasets import LICENSE, Dataset

DIMENSIONS = {
    "findability": ("可发现性", 100),
    "accessibility": ("可获取性", 100),
    "interoperability": ("互操作性", 110),
    "reusability": ("可重用性", 75),
    "contextuality": ("情境信息", 20),
}
MAXIMUM = 405
BANDS = (
    ("excellent", "优秀", 351),
    ("good", "良好", 221),
    ("sufficient", "一般", 121),
    ("bad", "较差", 0),
)
# data.europa.eu's machine-readable and non-proprietary file types, for the formats we serve
MACHINE_READABLE = {"csv", "xlsx", "json"}
NON_PROPRIETARY = {"csv", "json"}
EU_LICENCES = "http://publications.europa.eu/resource/authority/licence/"


@dataclass(frozen=True)
class Indicator:
    dimension: str
    name: str
    label: str
    weight: int
    passed: bool
    hint: str = ""


def band(points: float) -> str:
    for code, _label, lowest in BANDS:
        if points >= lowest:
            return code
    return "bad"


def band_label(code: str) -> str:
    return next(label for c, label, _ in BANDS if c == code)


def indicators(ds: Dataset) -> list[Indicator]:
    """Every indicator of one dataset, as its DCAT record carries it."""
    described = bool(ds.notes.strip())  # dcat.py falls back to the title: not a description
    best = max(
        ds.formats,
        key=lambda f: (f.lower() in NON_PROPRIETARY) + (f.lower() in MACHINE_READABLE),
    ).lower()
    downloadable = ds.downloadable
    answering = downloadable and ds.stored
    licence_in_vocabulary = LICENSE["url"].startswith(EU_LICENCES)
    return [
        Indicator("findability", "keyword", "关键词", 30, bool(ds.tags), "补充标签"),
        Indicator("findability", "theme", "主题分类", 30, bool(ds.topics), "归入主题"),
        Indicator("findability", "spatial", "空间范围", 20, False, "发布 dct:spatial（行政区划）"),
        Indicator(
            "findability", "temporal", "时间范围", 20, False, "发布 dct:temporal（数据起止）"
        ),
        Indicator("accessibility", "access_url", "访问地址可用", 50, True),
        Indicator(
            "accessibility", "download_url", "下载地址", 20, downloadable, "有条件开放：无下载地址"
        ),
        Indicator(
            "accessibility",
            "download_ok",
            "下载地址可用",
            30,
            answering,
            "尚无数据，下载不可用" if downloadable else "有条件开放：无下载地址",
        ),
        Indicator("interoperability", "format", "文件格式", 20, True),
        Indicator("interoperability", "media_type", "媒体类型", 10, True),
        Indicator("interoperability", "vocabulary", "格式取自词表", 10, True),
        Indicator("interoperability", "non_proprietary", "非专有格式", 20, best in NON_PROPRIETARY),
        Indicator("interoperability", "machine_readable", "机器可读", 20, best in MACHINE_READABLE),
        Indicator(
            "interoperability",
            "dcat_ap",
            "符合 DCAT-AP",
            30,
            described,
            "补充资源摘要（dct:description）",
        ),
        Indicator("reusability", "license", "开放许可", 20, bool(LICENSE["url"])),
        Indicator(
            "reusability",
            "license_vocabulary",
            "许可取自欧盟词表",
            10,
            licence_in_vocabulary,
            "许可改用欧盟许可词表的地址",
        ),
        Indicator("reusability", "access_rights", "访问权限", 10, True),
        Indicator("reusability", "access_rights_vocabulary", "访问权限取自词表", 5, True),
        Indicator(
            "reusability",
            "contact_point",
            "联系方式",
            20,
            bool(ds.contact.strip() or ds.phone.strip()),
            "补充联系人或电话",
        ),
        Indicator("reusability", "publisher", "发布单位", 10, bool(ds.provider_name)),
        Indicator("contextuality", "rights", "权利声明", 5, False, "发布 dct:rights"),
        Indicator("contextuality", "byte_size", "文件大小", 5, False, "发布 dcat:byteSize"),
        Indicator("contextuality", "issued", "发布日期", 5, True),
        Indicator("contextuality", "modified", "更新日期", 5, True),
    ]


def assess(ds: Dataset) -> dict[str, Any]:
    """Points per dimension, the total, the band and what would raise it."""
    found = indicators(ds)
    points = {d: 0 for d in DIMENSIONS}
    for i in found:
        points[i.dimension] += i.weight if i.passed else 0
    total = sum(points.values())
    return {
        "dataset": ds.slug,
        "code": ds.code,
        "title": ds.title,
        "provider": ds.provider_short,
        "points": points,
        "total": total,
        "band": band(total),
        "missing": [
            {"dimension": i.dimension, "label": i.label, "weight": i.weight, "hint": i.hint}
            for i in found
            if not i.passed
        ],
    }
