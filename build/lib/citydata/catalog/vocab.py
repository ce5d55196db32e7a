"""Controlled vocabularies of the national catalog guideline (政务信息资源目录编制指南, 2017).

Stored and spoken over the API as the English code; shown and filled in as the Chinese term.
Imports accept either."""

from __future__ import annotations

CATEGORY = {"basic": "基础", "theme": "主题", "department": "部门"}
CATEGORY_DIGIT = {"basic": "1", "theme": "2", "department": "3"}
SHARE_TYPE = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
SHARE_METHOD = {
    "system": "系统对接",
    "online_query": "联机查询",
    "browse": "在线浏览",
    "service": "调用在线服务",
    "download": "下载",
    "other": "其他",
}
OPEN_TYPE = {"open": "普遍开放", "conditional": "有条件开放", "closed": "不予开放"}
UPDATE_CYCLE = {
    "realtime": "实时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "yearly": "每年",
    "irregular": "不定期",
}
# How many days may pass between batches before a class counts as stale.
CYCLE_DAYS = {
    "realtime": 1,
    "daily": 1,
    "weekly": 7,
    "monthly": 31,
    "quarterly": 92,
    "yearly": 366,
    "irregular": None,
}


def on_time(update_cycle: str, days_since: int | None) -> bool:
    """Did data arrive within the class's update cycle? (No earlier data or no fixed cycle:
    nothing to be late for.)"""
    cycle = CYCLE_DAYS.get(update_cycle)
    return days_since is None or cycle is None or days_since <= cycle


FORMAT_CLASS = {
    "database": "数据库",
    "spreadsheet": "电子表格",
    "document": "电子文件",
    "image": "图形图像",
    "media": "流媒体",
    "self_describing": "自描述格式",
    "interface": "接口",
    "other": "其他",
}
SECRET = {"non_classified": "非涉密", "classified": "涉密"}
BASE_DB = {
    "population": "人口库",
    "legal_person": "法人库",
    "spatial": "空间地理库",
    "city_component": "城市部件库",
    "housing": "房屋房产库",
    "economy": "经济信息库",
    "event": "事件库",
    "none": "无",
}
STATUS = {"draft": "草稿", "published": "已发布", "retired": "已停用"}
LEVEL = {
    "city": "市级",
    "district": "区县级",
    "street": "街道乡镇级",
    "community": "社区村级",
    "park": "园区",
}
DATA_TYPE = {
    "C": "字符",
    "N": "数值",
    "Y": "货币",
    "D": "日期",
    "T": "日期时间",
    "L": "逻辑",
    "I": "整型",
    "F": "浮点",
    "B": "双精度",
    "M": "备注",
    "G": "几何",
}
SENSITIVITY = {
    "public": "公开",
    "internal": "内部",
    "personal": "个人信息",
    "sensitive": "敏感个人信息",
}
# Validation rules a field may name (the ingest pipeline implements each, vectorised).
RULES = {
    "id_number": "居民身份证号码 GB 11643",
    "credit_code": "统一社会信用代码 GB 32100",
    "division": "行政区划代码 GB/T 2260",
    "mobile": "手机号码",
    "past_date": "日期不晚于今天",
    "longitude": "经度在城市范围内",
    "latitude": "纬度在城市范围内",
}
TRUE_WORDS = {"是", "true", "1", "yes", "y", "√"}
FALSE_WORDS = {"否", "false", "0", "no", "n", ""}


def label(vocab: dict[str, str], code: str | None) -> str:
    return vocab.get(code or "", code or "")


def to_code(vocab: dict[str, str], value: object) -> str | None:
    """Accept the code or the Chinese term; None when it is neither."""
    text = str(value).strip() if value is not None else ""
    if text in vocab:
        return text
    for code, term in vocab.items():
        if term == text:
            return code
    return None
