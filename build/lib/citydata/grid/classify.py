"""Which category a citizen's words describe. A small model trained on the city's own labelled
events (TF-IDF over character 1–3-grams, since Chinese has no spaces and citizens misspell, and
a logistic regression for probabilities); nothing is downloaded. It proposes, the dispatcher
decides; below ``THRESHOLD`` it says 其他. Kept in the database as plain arrays (``.npz``,
loaded without pickle), with its held-out accuracy and the keyword baseline's beside it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.grid.models import Classifier, Event
from citydata.grid.sla import categories

THRESHOLD = 0.35  # below it the model does not know: 其他
OTHER = "其他"
HELD_OUT = 0.2


def keyword_guess(texts: list[str]) -> list[str | None]:
    """The baseline: the category whose words (``categories.toml``) occur most, or None."""
    known = list(categories().values())
    guesses: list[str | None] = []
    for text in texts:
        hits = [sum(w in text for w in c.words) for c in known]
        best = int(np.argmax(hits)) if hits else 0
        guesses.append(known[best].code if hits and hits[best] else None)
    return guesses


@dataclass
class Model:
    vectorizer: TfidfVectorizer
    regression: LogisticRegression

    def propose(self, texts: list[str], top: int = 3) -> list[list[tuple[str, float]]]:
        """The ``top`` categories of each text with their probabilities, most likely first."""
        probabilities = self.regression.predict_proba(self.vectorizer.transform(texts))
        order = np.argsort(-probabilities, axis=1)[:, :top]
        classes = self.regression.classes_
        return [
            [(str(classes[j]), round(float(row[j]), 4)) for j in best]
            for row, best in zip(probabilities, order, strict=True)
        ]

    def decide(self, texts: list[str]) -> list[str]:
        """The most likely category, or 其他 below the threshold."""
        return [p[0][0] if p[0][1] >= THRESHOLD else OTHER for p in self.propose(texts, 1)]

    def to_bytes(self) -> bytes:
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.__getitem__)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            terms=np.array(terms, dtype=str),
            idf=self.vectorizer.idf_,
            coef=self.regression.coef_,
            intercept=self.regression.intercept_,
            classes=np.array(self.regression.classes_, dtype=str),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        vectorizer = _vectorizer({str(t): i for i, t in enumerate(arrays["terms"])})
        vectorizer.idf_ = arrays["idf"]
        regression = LogisticRegression()
        regression.coef_, regression.intercept_ = arrays["coef"], arrays["intercept"]
        regression.classes_ = arrays["classes"]
        return cls(vectorizer, regression)


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, vocabulary=vocabulary
    )


def fit(texts: list[str], labels: list[str]) -> Model:
    vectorizer = _vectorizer()
    features = vectorizer.fit_transform(texts)
    regression = LogisticRegression(max_iter=1000, C=10.0)
    regression.fit(features, labels)
    return Model(vectorizer, regression)


@dataclass(frozen=True)
class Trained:
    model: Model
    samples: int
    accuracy: float  # on the held-out events
    baseline_accuracy: float  # the keyword baseline on the same events


def train(texts: list[str], labels: list[str], seed: int = 0) -> Trained:
    """Fit on 80 % of the labelled texts, measure on the other 20 %, then refit on all."""
    if len(set(labels)) < 2 or len(texts) < 10:
        raise ValueError("训练分类器至少需要 10 条、两个以上类别的已标注事件")
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(len(texts) * (1 - HELD_OUT))
    train_i, test_i = order[:cut], order[cut:]
    held_texts = [texts[i] for i in test_i]
    truth = np.array([labels[i] for i in test_i])
    first = fit([texts[i] for i in train_i], [labels[i] for i in train_i])
    accuracy = float(np.mean(np.array(first.decide(held_texts)) == truth))
    baseline = float(np.mean(np.array(keyword_guess(held_texts), dtype=object) == truth))
    return Trained(fit(texts, labels), len(texts), accuracy, baseline)


def save(session: Session, trained: Trained) -> Classifier:
    row = Classifier(
        samples=trained.samples,
        accuracy=trained.accuracy,
        baseline_accuracy=trained.baseline_accuracy,
        arrays=trained.model.to_bytes(),
    )
    session.add(row)
    session.flush()
    return row


_loaded: dict[tuple[str, int, datetime], Model] = {}


def latest(session: Session) -> Model | None:
    """The newest trained model (loaded once per process, database and version), or None."""
    newest = session.execute(
        select(Classifier.id, Classifier.trained_at).order_by(Classifier.id.desc()).limit(1)
    ).first()
    if newest is None:
        return None
    key = (str(session.get_bind().url), newest[0], newest[1])
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = Model.from_bytes(session.get(Classifier, newest[0]).arrays)
    return _loaded[key]


def labelled(session: Session) -> tuple[list[str], list[str]]:
    """Citizens' words with the category the dispatcher registered them under: events past 立案
    (a voided or unregistered report has no confirmed category), with a description."""
    rows = session.execute(
        select(Event.description, Event.category).where(
            Event.status.not_in(["reported", "voided"]),
            Event.source == "citizen",
            Event.description != "",
        )
    ).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def train_from_events(session: Session) -> Classifier:
    texts, labels = labelled(session)
    return save(session, train(texts, labels))
