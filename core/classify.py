"""Routing a complaint to an OPD. FIRST CUT: keyword matching from the OPD catalogue.

The interface (Decision, Classifier.classify / classify_many, get_classifier) is what the
pipeline and the CLI use; the statistical classifier replaces the implementation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.config import AppConfig


@dataclass
class Decision:
    opd: str | None  # the OPD the ticket goes to; None for a non-complaint or triage
    confidence: float
    complaint: bool = True  # False: greeting, thanks, spam, promotion
    triage: bool = False  # True: below the threshold, a media-center operator decides
    candidate: str | None = None  # best OPD even when sent to triage
    reasons: list[str] = field(default_factory=list)  # the terms or rules that drove it
    model_version: str = "keywords-0"


class Classifier:
    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        self._patterns = {
            o.code: re.compile(r"\b(" + "|".join(re.escape(k.lower()) for k in o.keywords) + r")\b")
            for o in cfg.opds if o.keywords
        }

    def classify(self, text: str, channel: str | None = None) -> Decision:
        low = text.lower()
        scores: dict[str, list[str]] = {}
        for code, pat in self._patterns.items():
            hits = pat.findall(low)
            if hits:
                scores[code] = hits
        if not scores:
            return Decision(opd=None, confidence=0.0, complaint=bool(low.strip()), triage=bool(low.strip()))
        best = max(scores, key=lambda c: len(scores[c]))
        conf = len(scores[best]) / sum(len(v) for v in scores.values())
        triage = conf < self.cfg.classify.threshold
        return Decision(opd=None if triage else best, confidence=conf, triage=triage,
                        candidate=best, reasons=sorted(set(scores[best]))[:5])

    def classify_many(self, texts: list[str], channels: list[str | None] | None = None) -> list[Decision]:
        chans = channels or [None] * len(texts)
        return [self.classify(t, c) for t, c in zip(texts, chans)]


_CACHE: dict[int, Classifier] = {}


def get_classifier(cfg: AppConfig) -> Classifier:
    """One classifier per configuration per process (models are loaded once)."""
    if id(cfg) not in _CACHE:
        _CACHE[id(cfg)] = Classifier(cfg)
    return _CACHE[id(cfg)]
