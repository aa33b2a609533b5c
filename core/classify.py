"""Routing a complaint to an OPD: admin rules, a trained model, a non-complaint detector.

The decision is layered:

1. **Admin rules** from ``classify.rules`` in config.yaml: phrases (matched on normalised text)
   or a regular expression (matched on the original text, case-insensitive) per OPD with a
   weight. ``force: true`` decides outright; otherwise the weight is added to that OPD's score.
   A rule with ``opd: null`` marks a non-complaint.
2. **The trained model** (see core/train.py): word uni/bigram TF-IDF on stemmed, normalised
   text (plus, for a long report, on its first sentence: the LAPOR! title) + character n-gram
   TF-IDF on the opening of the normalised text (its first ``char_limit`` characters: the rest of a
   long report adds addresses, names and history that belong to no OPD) + the OPD vocabulary (core/data/opd_terms.yaml)
   and the catalogue keywords of config.yaml as per-OPD hit counts, into a multinomial logistic
   regression whose probabilities are temperature-calibrated on held-out data.
3. **Non-complaints**: a class ``NONE`` of the same model plus rules for bare greetings, thanks
   and obvious spam: ``complaint=False, opd=None``.

Below ``classify.threshold`` the ticket goes to triage (``opd=None, triage=True``) with the best
OPD as ``candidate``. ``reasons`` lists the rules, vocabulary phrases and words that drove it.

The model is loaded once per process, lazily: the newest ``model-*.joblib`` in
``$ADUAN_DATA_DIR/models/`` (written by ``aduan train``), else the shipped
``core/data/model/model.joblib``. At most every RELOAD_INTERVAL seconds a call checks for a
newer file and swaps it in without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.config import AppConfig
from core.normalise import normalise, preload_stems, routing_words, stem, stopwords
# PhraseMatcher is also looked up here by model files pickled before it moved (core.classify.PhraseMatcher).
from core.route_features import PhraseMatcher, Prepared, catalogue_phrases, featurise, prepare

log = logging.getLogger(__name__)

NONE = "NONE"  # the model's class for non-complaints
SHIPPED_MODEL = Path(__file__).resolve().parent / "data" / "model" / "model.joblib"
RELOAD_INTERVAL = 30.0  # seconds between checks for a newer model file
MODEL_GLOB = "model-*.joblib"
LONG_TEXT_TOKENS = 15  # a message this long (routing tokens) is never taken for a greeting


@dataclass
class Decision:
    opd: str | None  # the OPD the ticket goes to; None for a non-complaint or triage
    confidence: float
    complaint: bool = True  # False: greeting, thanks, spam, promotion
    triage: bool = False  # True: below the threshold, a media-center operator decides
    candidate: str | None = None  # best OPD even when sent to triage
    reasons: list[str] = field(default_factory=list)  # the terms or rules that drove it
    model_version: str = "keywords-0"


# ---------------------------------------------------------------- model store


def models_dir() -> Path:
    """`$ADUAN_DATA_DIR/models` (not created here: reading must not write)."""
    return Path(os.environ.get("ADUAN_DATA_DIR", "./data")).resolve() / "models"


def newest_model_path() -> Path | None:
    d = models_dir()
    found = sorted(d.glob(MODEL_GLOB)) if d.is_dir() else []
    if found:
        return found[-1]  # versioned names sort by time
    return SHIPPED_MODEL if SHIPPED_MODEL.exists() else None


def load_model(path: Path) -> dict[str, Any]:
    import joblib

    art = joblib.load(path)
    if not isinstance(art, dict) or art.get("format") != 1:
        raise ValueError(f"{path}: not an Aduan model file")
    art.setdefault("version", path.stem)
    if art.get("stems"):
        preload_stems(art["stems"])
    return art


class _Store:
    """The process-wide current model; checks for a newer file at most every RELOAD_INTERVAL s."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.art: dict[str, Any] | None = None
        self.key: tuple[str, float] | None = None
        self.checked = 0.0
        self.generation = 0

    def get(self, force: bool = False) -> dict[str, Any] | None:
        now = time.monotonic()
        if self.art is not None and not force and now - self.checked < RELOAD_INTERVAL:
            return self.art
        with self.lock:
            if self.art is not None and not force and now - self.checked < RELOAD_INTERVAL:
                return self.art
            self.checked = now
            path = newest_model_path()
            candidates = [path] if path is not None else []
            if path is not None and path != SHIPPED_MODEL and SHIPPED_MODEL.exists():
                candidates.append(SHIPPED_MODEL)
            for p in candidates:
                try:
                    key = (str(p), p.stat().st_mtime)
                    if key == self.key:
                        break
                    art = load_model(p)
                except Exception as exc:  # a broken file never stops routing
                    log.warning("cannot load model %s: %s", p, exc)
                    continue
                self.art, self.key = art, key
                self.generation += 1
                log.info("routing model %s loaded from %s", art["version"], p)
                break
            return self.art

    def reset(self) -> None:
        with self.lock:
            self.art, self.key, self.checked = None, None, 0.0


STORE = _Store()


def current_model(force: bool = False) -> dict[str, Any] | None:
    return STORE.get(force)


# ---------------------------------------------------------------- non-complaint rules

_SMALLTALK = set(
    "halo hallo hai hi hey hei pagi siang sore malam selamat assalamualaikum waalaikumsalam salam "
    "wr wb terima kasih makasih banyak sama sama oke ok okay okey siap sip baik mantap keren good nice "
    "admin kak pak bu mas mbak bro sis semua ya iya yes tes test testing ping p permisi maaf "
    "bang cak rek dulur lur sehat selalu semangat sukses luar biasa sudah beres "
    "atas nya ditanggapi puas bagus hebat juga "
    "met makasi thanks thank you jumat berkah happy weekend aamiin amin alhamdulillah hehe haha "
    "tidak jadi batal salah kirim keliru nomor".split()
)
_SPAM = re.compile(
    r"slot\s*gacor|maxwin|bonus\s+new\s+member|rtp\s+live|link\s+alternatif|deposit\s+(?:pulsa|\d)|"
    r"pinjaman\s+(?:dana|online)\s+(?:cepat|cair)|cair\s+tanpa\s+jaminan|open\s+(?:order|reseller|po)\b|"
    r"follow\s+(?:back|ig|akun)|cek\s+(?:bio|ig|link)|wa\.me/|dijual\s+cepat|promo\s+(?:spesial|hari ini)|"
    r"les\s+privat|hubungi\s+(?:kami\s+di|wa\s+kami|admin\s+kami)|terima\s+(?:jasa|pesanan)\b",
    re.I,
)
# "Thanks, the road has been paved": gratitude for finished work is not a new complaint.
_THANKS = re.compile(r"^(?:\w+ ){0,3}(?:terima kasih|mantap|mantab|mantep|alhamdulillah|salut|keren|joss|jos|apresiasi|"
                     r"sip|good job|top|luar biasa)\b")
_DONE = re.compile(r"\b(?:sudah|akhirnya|telah)\s+(?:\w+\s+)?(?:diperbaiki|diaspal|dibersihkan|bersih|diangkut|menyala|"
                   r"nyala|beres|ditangani|normal|lancar|selesai|dipangkas|dikeruk|diganti|dipasang|mengalir|terbit|jadi|"
                   r"cair|ditertibkan|dibenahi)\b")
_STILL_WRONG = re.compile(r"\b(?:tidak|belum|masih|tapi|tetapi|namun|kok|lagi|kembali|padahal|sayang|tolong|mohon)\b")
_COMPLAINT_HINT = re.compile(r"\b(blokir|lapor|resah|meresahkan|tolong|mohon\s+(?:di|ditindak)|keluhan|aduan)\b")


def _rule_non_complaint(text: str, norm: str) -> str | None:
    """A reason when the text is obviously not a complaint, else None."""
    if not norm.strip() or not re.search(r"[a-z]", norm):
        return "kosong"
    words = norm.split()
    if len(words) <= 8 and all(w in _SMALLTALK or w.isdigit() for w in words):
        return "sapaan/terima kasih"
    if _SPAM.search(text) and not _COMPLAINT_HINT.search(norm):
        return "spam/promosi"
    if len(words) <= 25 and _THANKS.search(norm) and _DONE.search(norm) and not _STILL_WRONG.search(norm):
        return "ucapan terima kasih"
    return None


# ---------------------------------------------------------------- the classifier


class Classifier:
    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        self.catalogue = PhraseMatcher(catalogue_phrases(cfg))
        self.rules: list[tuple[Any, list[str], re.Pattern[str] | None]] = []
        for rule in cfg.classify.rules:
            phrases = [p for p in (normalise(p) for p in rule.phrases) if p]
            pattern = re.compile(rule.pattern, re.I) if rule.pattern else None
            self.rules.append((rule, phrases, pattern))

    # -- model access -------------------------------------------------------------

    @property
    def model(self) -> dict[str, Any] | None:
        return current_model()

    @property
    def model_version(self) -> str:
        art = self.model
        return art["version"] if art else "keywords-0"

    # -- rules ----------------------------------------------------------------------

    def _rule_hits(self, text: str, norm: str) -> list[tuple[Any, str]]:
        hits = []
        padded = f" {norm} "
        for rule, phrases, pattern in self.rules:
            for p in phrases:
                if f" {p} " in padded:
                    hits.append((rule, p))
                    break
            else:
                if pattern is not None:
                    m = pattern.search(text)
                    if m:
                        hits.append((rule, m.group(0).lower()))
        return hits

    # -- public ---------------------------------------------------------------------

    def classify(self, text: str, channel: str | None = None) -> Decision:
        return self.classify_many([text], [channel])[0]

    def classify_many(self, texts: list[str], channels: list[str | None] | None = None) -> list[Decision]:
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return []
        art = self.model
        prep = prepare(texts)
        if art is None:  # no model at all: the catalogue keywords decide
            return [self._active(self._keywords_only(prep, i)) for i in range(len(texts))]
        classes: list[str] = art["classes"]
        X = featurise(art, prep, self.catalogue)
        logits = np.asarray(X @ art["coef"].T) + art["intercept"]
        logits = logits / art.get("temperature", 1.0)
        out = []
        threshold = self.cfg.classify.threshold
        version = art["version"]
        for i in range(len(texts)):
            out.append(self._decide(art, classes, X, i, logits[i], prep, threshold, version))
        return [self._active(d) for d in out]

    def _active(self, d: Decision) -> Decision:
        """A retired OPD (opds[].active: false) gets nothing new: what would go there goes to triage."""
        opd = self.cfg.opd(d.opd) if d.opd else None
        if opd is None or opd.active:
            return d
        return Decision(opd=None, confidence=d.confidence, triage=True, reasons=[*d.reasons, f"OPD {opd.code} nonaktif"],
                        model_version=d.model_version)

    def _decide(self, art: dict[str, Any], classes: list[str], X: sp.csr_matrix, i: int, z: np.ndarray,
                prep: Prepared, threshold: float, version: str) -> Decision:
        text, norm = prep.texts[i], prep.norms[i]
        rule_reasons: dict[str | None, list[str]] = {}
        z = z.copy()
        for rule, hit in self._rule_hits(text, norm):
            reason = f"aturan: {hit}"
            if rule.force:
                if rule.opd is None:
                    return Decision(opd=None, confidence=1.0, complaint=False, reasons=[reason],
                                    model_version=version)
                return Decision(opd=rule.opd, confidence=1.0, candidate=rule.opd, reasons=[reason],
                                model_version=version)
            label = rule.opd if rule.opd is not None else NONE
            if label in classes:
                z[classes.index(label)] += rule.weight
                rule_reasons.setdefault(label, []).append(reason)
        why = _rule_non_complaint(text, norm) if not rule_reasons else None
        if why is not None:
            return Decision(opd=None, confidence=0.95, complaint=False, reasons=[why], model_version=version)
        if LONG_TEXT_TOKENS and classes[int(np.argmax(z))] == NONE and NONE in classes \
                and len(prep.toks[i]) >= LONG_TEXT_TOKENS:
            # A long message is a complaint (or for triage), however politely it opens; obvious spam
            # was caught by the rules above.
            z[classes.index(NONE)] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p)
        best = classes[order[0]]
        best_opd = next((classes[j] for j in order if classes[j] != NONE), None)
        conf = float(p[order[0]])
        if best == NONE and conf >= threshold:
            return Decision(opd=None, confidence=round(conf, 4), complaint=False,
                            reasons=rule_reasons.get(NONE, []) + self._explain(art, X, i, classes.index(NONE), prep),
                            model_version=version)
        target = best_opd if best == NONE else best
        assert target is not None
        reasons = rule_reasons.get(target, []) + self._explain(art, X, i, classes.index(target), prep)
        if best == NONE or conf < threshold:
            opd_conf = float(p[classes.index(target)])
            return Decision(opd=None, confidence=round(opd_conf, 4), triage=True, candidate=target,
                            reasons=reasons[:5], model_version=version)
        return Decision(opd=best, confidence=round(conf, 4), candidate=best, reasons=reasons[:5],
                        model_version=version)

    def _explain(self, art: dict[str, Any], X: sp.csr_matrix, i: int, c: int, prep: Prepared,
                 k: int = 5) -> list[str]:
        """The readable terms that pushed doc i towards class c: vocabulary phrases, then words."""
        label = art["classes"][c]
        reasons: list[str] = []
        for key, labs in prep.hits_of(art["lexicon"])[i] + prep.hits_of(self.catalogue)[i]:
            if label in labs:
                phrase = art["lexicon"].surface.get(key) or self.catalogue.surface.get(key) or " ".join(key)
                if phrase not in reasons:
                    reasons.append(phrase)
        # Longest phrases first: "lampu jalan mati" says more than "lampu".
        reasons.sort(key=lambda r: -len(r.split()))
        reasons = [r for j, r in enumerate(reasons) if not any(r in q for q in reasons[:j])][:3]
        n_word = art["n_word"]
        lo, hi = X.indptr[i], X.indptr[i + 1]
        idx, vals = X.indices[lo:hi], X.data[lo:hi]
        mask = idx < n_word
        idx, vals = idx[mask], vals[mask]
        if len(idx):
            contrib = vals * art["coef"][c, idx]
            names = art["word_names"]
            surface = _surface_map(prep.norms[i])
            known = routing_words()
            pos = np.flatnonzero(contrib > 0)
            order = pos[np.argsort(-contrib[pos])[: 3 * k]].tolist()
            idx = idx.tolist()
            # Domain words first ("got", "mampet"), then whatever else pushed hardest.
            for strict in (True, False):
                for j in order:
                    if len(reasons) >= (k if strict else 2):
                        break
                    stems = names[idx[j]].split()
                    words = [surface.get(s, s) for s in stems]
                    if strict and not all(w in known or s in known for w, s in zip(words, stems)):
                        continue
                    term = " ".join(words)
                    if not any(term in r or r in term for r in reasons):
                        reasons.append(term)
        return reasons[:k]

    def _keywords_only(self, prep: Prepared, i: int) -> Decision:
        why = _rule_non_complaint(prep.texts[i], prep.norms[i])
        if why is not None:
            return Decision(opd=None, confidence=0.95, complaint=False, reasons=[why])
        tally: dict[str, list[str]] = {}
        for key, labs in self.catalogue.hits(prep.toks[i]):
            for lab in labs:
                tally.setdefault(lab, []).append(self.catalogue.surface.get(key, " ".join(key)))
        if not tally:
            return Decision(opd=None, confidence=0.0, triage=True)
        best = max(tally, key=lambda c: len(tally[c]))
        conf = len(tally[best]) / sum(len(v) for v in tally.values())
        triage = conf < self.cfg.classify.threshold
        return Decision(opd=None if triage else best, confidence=conf, triage=triage, candidate=best,
                        reasons=sorted(set(tally[best]))[:5])


def _surface_map(norm: str) -> dict[str, str]:
    """stem -> the first word in the text with that stem (for readable reasons)."""
    out: dict[str, str] = {}
    for w in norm.split():
        s = _surface_stem(w)
        if s:
            out.setdefault(s, w)
    return out


@lru_cache(maxsize=50_000)  # a pure function of the word: the tables are fixed per process
def _surface_stem(word: str) -> str:
    """The word's stem, or "" for a stopword."""
    return "" if word in stopwords() else stem(word)


_CACHE: dict[int, tuple[AppConfig, Classifier]] = {}


def get_classifier(cfg: AppConfig) -> Classifier:
    """One classifier per configuration per process. The model itself is shared and reloaded
    when a newer version appears in the data dir (checked at most every RELOAD_INTERVAL s)."""
    hit = _CACHE.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        hit = (cfg, Classifier(cfg))
        _CACHE[id(cfg)] = hit
    current_model()
    return hit[1]
