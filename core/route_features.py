"""What the routing model reads of a text (core.classify; the same code trains it in core.train).

Phrase hits of the OPD vocabulary and the catalogue keywords, and TF-IDF rows of word n-grams,
of character n-grams and of a long report's title, computed for a whole batch at once with the
vocabularies and idf the model was trained with (no scikit-learn at run time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.config import AppConfig
from core.normalise import normalise, tokens


# ---------------------------------------------------------------- phrase matching


class PhraseMatcher:
    """Finds stemmed phrases (tuples of tokens) in a token list; maps them to labels."""

    def __init__(self, phrases: dict[str, list[str]]):
        self.index: dict[tuple[str, ...], set[str]] = {}
        self.surface: dict[tuple[str, ...], str] = {}
        for label, entries in phrases.items():
            for entry in entries:
                key = tuple(tokens(str(entry)))
                if not key:
                    continue
                self.index.setdefault(key, set()).add(label)
                self.surface.setdefault(key, str(entry).lower())
        self.max_len = max((len(k) for k in self.index), default=0)
        self.starts: dict[str, tuple[int, ...]] = {}
        for key in self.index:
            self.starts[key[0]] = tuple(sorted(set(self.starts.get(key[0], ())) | {len(key)}))

    def hits(self, toks: list[str]) -> list[tuple[tuple[str, ...], set[str]]]:
        found = []
        n = len(toks)
        starts, index = self.starts, self.index
        for i, t in enumerate(toks):
            lengths = starts.get(t)
            if not lengths:
                continue
            for k in lengths:
                if i + k > n:
                    break
                key = tuple(toks[i:i + k])
                labels = index.get(key)
                if labels:
                    found.append((key, labels))
        return found

    def counts(self, docs: list[list[str]], labels: list[str],
               found: list[list[tuple[tuple[str, ...], set[str]]]] | None = None) -> sp.csr_matrix:
        """log1p(hit count) per label for every doc (a sparse docs x labels matrix); `found`: the
        docs' hits if already known."""
        col = {c: j for j, c in enumerate(labels)}
        rows, cols, vals = [], [], []
        for i, toks in enumerate(docs):
            tally: dict[int, int] = {}
            for _key, labs in (found[i] if found is not None else self.hits(toks)):
                for lab in labs:
                    j = col.get(lab)
                    if j is not None:
                        tally[j] = tally.get(j, 0) + 1
            for j, c in tally.items():
                rows.append(i)
                cols.append(j)
                vals.append(np.log1p(c))
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(labels)), dtype=np.float64)


def catalogue_phrases(cfg: AppConfig) -> dict[str, list[str]]:
    return {o.code: list(o.keywords) for o in cfg.opds if o.keywords}


# ---------------------------------------------------------------- features (shared with training)


@dataclass
class Prepared:
    texts: list[str]
    norms: list[str]
    toks: list[list[str]]
    hits: dict[int, list[list[tuple[tuple[str, ...], set[str]]]]] = field(default_factory=dict)  # matcher id -> per doc

    def hits_of(self, matcher: "PhraseMatcher") -> list[list[tuple[tuple[str, ...], set[str]]]]:
        """Each doc's phrase hits for `matcher`, found once (the features and the reasons both use them)."""
        got = self.hits.get(id(matcher))
        if got is None:
            got = self.hits[id(matcher)] = [matcher.hits(t) for t in self.toks]
        return got

    @property
    def titles(self) -> list[list[str]]:
        """Tokens of the first sentence of a longer text (a LAPOR! title), else []."""
        out = []
        for text, toks in zip(self.texts, self.toks):
            m = _TITLE.match(text or "")
            if m and len(toks) > 25:
                out.append(tokens(m.group(1)))
            else:
                out.append([])
        return out


_TITLE = re.compile(r"\s*([^.!?\n]{8,160})[.!?\n]")


def prepare(texts: list[str]) -> Prepared:
    norms = [normalise(t or "") for t in texts]
    return Prepared(list(texts), norms, [tokens(n, normalised=True) for n in norms])


def char_text(norm: str, limit: int) -> str:
    return norm[:limit] if limit else norm


def _char_wb_grams(word: str, lo: int, hi: int) -> list[str]:
    """sklearn's char_wb n-grams of one word (padded with a space on both sides)."""
    w = f" {word} "
    out = []
    for n in range(lo, hi + 1):
        offset = 0
        out.append(w[offset:offset + n])
        while offset + n < len(w):
            offset += 1
            out.append(w[offset:offset + n])
        if offset == 0:
            break
    return out


def _tfidf_rows(art: dict[str, Any], key: str, grams_per_doc: list[list[np.ndarray]]) -> sp.csr_matrix:
    """Sublinear-tf x idf rows, l2-normalised (what sklearn's TfidfVectorizer(sublinear_tf=True) gives),
    computed for the whole batch at once."""
    idf = art[key]["idf"]
    n_docs = len(grams_per_doc)
    lengths = np.fromiter((sum(len(a) for a in parts) for parts in grams_per_doc), dtype=np.int64, count=n_docs)
    flat = [a for parts in grams_per_doc for a in parts]
    cols = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    m = sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(n_docs, len(idf)))
    m.sum_duplicates()  # data: raw term counts, indices sorted per row
    m.data = (1.0 + np.log(m.data)) * idf[m.indices]
    row_len = np.diff(m.indptr)
    rows = np.repeat(np.arange(n_docs), row_len)
    norms = np.sqrt(np.bincount(rows, weights=m.data ** 2, minlength=n_docs))
    norms[norms == 0] = 1.0
    m.data /= norms[rows]
    return m


def _cache(art: dict[str, Any], name: str) -> dict[Any, np.ndarray]:
    cache = art.get(name)
    if cache is None or len(cache) > 300_000:
        cache = art[name] = {}
    return cache


def char_transform(art: dict[str, Any], docs: list[str]) -> sp.csr_matrix:
    """char_wb n-gram TF-IDF of normalised docs; the n-grams of each distinct word are looked up
    once per process, which makes long texts cheap (and needs no scikit-learn at run time)."""
    vocab = art["char"]["vocab"]
    lo, hi = art["char"]["ngram"]
    cache = _cache(art, "_char_cache")
    out = []
    for doc in docs:
        parts = []
        for word in doc.split():
            cols = cache.get(word)
            if cols is None:
                cols = np.fromiter((vocab[g] for g in _char_wb_grams(word, lo, hi) if g in vocab), dtype=np.int64)
                cache[word] = cols
            if len(cols):
                parts.append(cols)
        out.append(parts)
    return _tfidf_rows(art, "char", out)


def word_transform(art: dict[str, Any], docs: list[list[str]]) -> sp.csr_matrix:
    """Word n-gram TF-IDF of token lists (same vocabulary and idf as training)."""
    vocab = art["word"]["vocab"]
    lo, hi = art["word"]["ngram"]
    out = []
    for toks in docs:
        cols = []
        n = len(toks)
        for k in range(lo, hi + 1):
            for i in range(n - k + 1):
                j = vocab.get(toks[i] if k == 1 else " ".join(toks[i:i + k]))
                if j is not None:
                    cols.append(j)
        out.append([np.asarray(cols, dtype=np.int64)] if cols else [])
    return _tfidf_rows(art, "word", out)


LENGTH_BUCKETS = (0, 1, 3, 6, 11, 21, 31)  # routing tokens: 0, 1-2, 3-5, 6-10, 11-20, 21-30, 31+


def length_features(docs: list[list[str]]) -> sp.csr_matrix:
    """One-hot length bucket: lets the model learn that greetings are short and complaints are not."""
    cols = [sum(1 for b in LENGTH_BUCKETS[1:] if len(t) >= b) for t in docs]
    return sp.csr_matrix((np.ones(len(docs)), (np.arange(len(docs)), cols)), shape=(len(docs), len(LENGTH_BUCKETS)))


def featurise(art: dict[str, Any], prep: Prepared, catalogue: PhraseMatcher | None) -> sp.csr_matrix:
    """The model's feature matrix for prepared docs (word | char | vocabulary | catalogue)."""
    w = art["weights"]
    blocks = [word_transform(art, prep.toks) * w["word"]]
    if w.get("title"):
        blocks.append(word_transform(art, prep.titles) * w["title"])
    if art.get("char") is not None:
        limit = art.get("char_limit", 0)
        blocks.append(char_transform(art, [char_text(n, limit) for n in prep.norms]) * w["char"])
    classes = art["classes"]
    if w.get("len"):
        blocks.append(length_features(prep.toks) * w["len"])
    blocks.append(art["lexicon"].counts(prep.toks, classes, prep.hits_of(art["lexicon"])) * w["lex"])
    if catalogue is not None:
        blocks.append(catalogue.counts(prep.toks, classes, prep.hits_of(catalogue)) * w["cat"])
    else:
        blocks.append(sp.csr_matrix((len(prep.toks), len(classes))))
    return sp.hstack(blocks, format="csr")
