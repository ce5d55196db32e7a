"""Append-only status histories whose allowed steps are data: a ``Transitions`` table read
from a domain's TOML file says, for each status, which may follow; a step not in the table is
refused with both statuses named. The domain keeps the history rows (who, when, where, why)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


class TransitionRefused(ValueError):
    pass


@dataclass(frozen=True)
class Transitions:
    name: str
    labels: dict[str, str]  # status -> its name in words
    follows: dict[str, frozenset[str]]  # status ("" for none yet) -> statuses that may follow
    final: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> Transitions:
        """``[statuses]`` code = label; ``[follows]`` code = [codes] ("start" for the first);
        ``final`` = [codes]."""
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
        labels = dict(spec["statuses"])
        follows = {("" if k == "start" else k): frozenset(v) for k, v in spec["follows"].items()}
        unknown = {s for v in follows.values() for s in v} | set(follows) - {""}
        unknown -= set(labels)
        if unknown:
            raise ValueError(f"{path.name}: 未定义的状态 {sorted(unknown)}")
        return cls(spec["name"], labels, follows, frozenset(spec.get("final", [])))

    def label(self, status: str) -> str:
        return self.labels.get(status, status)

    def allowed(self, current: str | None) -> frozenset[str]:
        return self.follows.get(current or "", frozenset())

    def check(self, current: str | None, new: str) -> None:
        if new not in self.labels:
            raise TransitionRefused(f"未知的状态「{new}」")
        if new not in self.allowed(current):
            now = self.label(current) if current else "（尚无）"
            may = "、".join(self.label(s) for s in sorted(self.allowed(current))) or "无"
            raise TransitionRefused(
                f"{self.name}：当前为「{now}」，不能转为「{self.label(new)}」；可转为：{may}"
            )
