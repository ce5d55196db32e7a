"""Topics (主题) and tags of open datasets, read from ``topics.toml``: a dataset belongs to every
topic whose words its title, department or description holds."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

TOPICS_FILE = Path(__file__).with_name("topics.toml")


# ---------------------------------------------------------------- topics and tags


@dataclass(frozen=True)
class Topic:
    name: str
    title: str
    title_en: str
    theme: str
    words: tuple[str, ...]


def _load_topics() -> tuple[list[Topic], tuple[str, ...]]:
    spec = tomllib.loads(TOPICS_FILE.read_text(encoding="utf-8"))
    topics = [
        Topic(t["name"], t["title"], t["title_en"], t["theme"], tuple(t["words"]))
        for t in spec["topic"]
    ]
    return topics, tuple(spec["tags"]["words"])


TOPICS, TAG_WORDS = _load_topics()
TOPIC_BY_NAME = {t.name: t for t in TOPICS}


def topics_of(text_: str) -> list[str]:
    found = [t.name for t in TOPICS if any(w in text_ for w in t.words)]
    return found or [TOPICS[-1].name]
