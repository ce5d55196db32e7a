"""Page text in Simplified Chinese (default) and English. Keys are the Chinese text itself, so a
template reads naturally and a missing English entry falls back to Chinese, never to a key."""

from __future__ import annotations

LANGUAGES = ("zh", "en")

EN = {
    "政务数据资源管理平台": "Government Data Resource Platform",
    "首页": "Home",
    "信息资源目录": "Resource catalog",
    "单位": "Units",
    "登录": "Log in",
    "退出": "Log out",
    "用户名": "Username",
    "密码": "Password",
    "用户名或密码错误": "Wrong username or password",
    "信息资源": "Resource classes",
    "已归集": "Aggregated",
    "可共享": "Shareable",
    "目标": "target",
    "按共享类型": "By sharing type",
    "按开放类型": "By open type",
    "按基础库": "By base database",
    "建设进度": "Progress toward the targets",
    "搜索": "Search",
    "全部": "All",
    "代码": "Code",
    "名称": "Name",
    "提供方": "Provider",
    "共享类型": "Sharing",
    "开放类型": "Open data",
    "更新周期": "Update cycle",
    "基础库": "Base database",
    "状态": "Status",
    "版本": "Version",
    "摘要": "Summary",
    "共享条件": "Sharing condition",
    "共享方式": "Sharing methods",
    "开放条件": "Open condition",
    "发布日期": "Published",
    "关联资源": "Related classes",
    "信息项": "Fields",
    "中文名称": "Label",
    "数据类型": "Type",
    "长度": "Length",
    "必填": "Required",
    "业务主键": "Key",
    "敏感级别": "Sensitivity",
    "校验规则": "Rules",
    "枚举值": "Values",
    "上一页": "Previous",
    "下一页": "Next",
    "共": "Total",
    "个": "",
    "简称": "Short name",
    "层级": "Level",
    "联系人": "Contact",
    "资源数": "Classes",
    "分类": "Classification",
    "格式": "Format",
    "没有找到信息资源": "No resource classes found",
    "是": "yes",
}


def translate(text: str, language: str) -> str:
    return EN.get(text, text) if language == "en" else text
