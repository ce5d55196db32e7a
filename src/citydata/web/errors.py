"""How errors look in the OpenAPI description, so clients (and schemathesis) know every answer
an operation can give. Most routes answer ``{"detail": …}``, FastAPI's own shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DESCRIPTIONS = {
    400: "请求有误（参数或请求体不合规则）",
    401: "需要登录或 API 令牌",
    403: "无权执行此操作",
    404: "不存在",
    409: "与当前状态冲突",
    413: "请求或文件过大",
    415: "文件类型不被接受",
    422: "请求无法处理（格式或取值不合规则）",
    429: "调用过于频繁或超过配额",
    503: "暂时无法服务（如审计记录无法写入）",
}


class Problem(BaseModel):
    """The usual error body: ``detail`` is a message, or FastAPI's list of invalid fields."""

    detail: Any


def documented(*codes: int, model: type[BaseModel] = Problem) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model, "description": DESCRIPTIONS[code]} for code in codes}


# What any route of the management API may answer besides success.
API_ERRORS = documented(400, 401, 403, 404, 409, 413, 422, 429, 503)


def refuse_nul(_request: Any, exc: Exception) -> Any:
    """A NUL character (0x00) in a value that reaches PostgreSQL: no text the city keeps holds
    one and PostgreSQL cannot store it, so the caller's input is refused (422), whichever
    parameter or body field carried it. Any other data error stays a server error."""
    from fastapi.responses import JSONResponse

    if "NUL" not in str(getattr(exc, "orig", exc)):
        raise exc
    return JSONResponse({"detail": "请求中的文本含有 NUL 字符（0x00）"}, status_code=422)
