"""MinHash LSH for deduplication: the band ids that put reports with similar wording in one bucket.

A report's words get a MinHash signature (datasketch's, 64 permutations) and the signature is cut
into bands (`lsh_params`: datasketch's optimum for the threshold); each band is mixed into one
64-bit bucket id. A batch's reports are handled together: one-word signatures are cached, a set's
signature is their minimum, and the band ids of a whole batch come from one numpy pass. The ids
must never change for the same words: the index holds ids computed by earlier versions.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from typing import Iterable

import numpy as np


@cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives at the threshold (datasketch's optimum)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


@cache
def _template(num_perm: int):  # type: ignore[no-untyped-def]
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=1)


def signature(words: Iterable[str], num_perm: int) -> np.ndarray:
    """MinHash signature of a word set: datasketch's, taken as the minimum of its words' one-word
    signatures (the same numbers: a MinHash is a minimum over its words), which are cached."""
    ws = sorted(words)
    return np.min(_word_rows(ws, num_perm), axis=0) if ws else _template(num_perm).hashvalues.copy()


_ROWS: dict[int, "OrderedDict[str, np.ndarray]"] = {}
ROWS_KEPT = 20_000  # distinct words whose one-word signature is kept (num_perm x 4 bytes each)


def _word_rows(words: list[str], num_perm: int) -> np.ndarray:
    """The one-word MinHash signature of each word (len(words) x num_perm), as datasketch gives it."""
    cache = _ROWS.setdefault(num_perm, OrderedDict())
    missing = list(dict.fromkeys(w for w in words if w not in cache))
    if missing:
        for w, row in zip(missing, _one_word_signatures(missing, num_perm)):
            cache[w] = row
        while len(cache) > ROWS_KEPT:
            cache.popitem(last=False)
    return np.stack([cache[w] for w in words])


def _one_word_signatures(words: list[str], num_perm: int) -> np.ndarray:
    """datasketch's MinHash of each single word, all at once: its update_batch arithmetic (hash,
    finaliser, affine permutations) applied to a column of words instead of one MinHash object per
    word, which costs ~20 µs each. Checked against datasketch itself once per process; a version
    whose arithmetic differs gets the one-object-per-word path."""
    if _vector_ok(num_perm):
        return _affine_rows(words, num_perm)
    return np.stack([_datasketch_row(w, num_perm) for w in words])


def _affine_rows(words: list[str], num_perm: int) -> np.ndarray:
    """datasketch's update_batch arithmetic for a column of words (its private helpers: checked)."""
    from datasketch.minhash import _SCHEME_WIDTHS, _fmix

    t = _template(num_perm)
    hv = t._hash_input_array([t.hashfunc(w.encode()) for w in words]).reshape(-1, 1)
    a, b = t.permutations
    return _fmix(hv, _SCHEME_WIDTHS[t.scheme]) * a + b


def _datasketch_row(word: str, num_perm: int) -> np.ndarray:
    from datasketch import MinHash

    t = _template(num_perm)
    m = MinHash(num_perm=num_perm, seed=1, permutations=t.permutations, scheme=t.scheme)
    m.update_batch([word.encode()])
    return m.hashvalues


@cache
def _vector_ok(num_perm: int) -> bool:
    probe = ["got", "mampet", "jalan", "berlubang", "lampu"]
    try:
        got = _affine_rows(probe, num_perm)
    except Exception:  # noqa: BLE001 - another datasketch: its own path is the reference
        return False
    want = np.stack([_datasketch_row(w, num_perm) for w in probe])
    return got.dtype == want.dtype and bool((got == want).all())


_BANDS: "OrderedDict[tuple, tuple[int, ...]]" = OrderedDict()
BANDS_KEPT = 8192  # word sets whose band ids are kept: a report is looked up, then indexed


def word_bands(words: frozenset[str], num_perm: int, bands: int, rows: int) -> tuple[int, ...] | None:
    """LSH band ids of a word set (None below two words)."""
    return word_bands_many([words], num_perm, bands, rows)[0]


def word_bands_many(sets: list[frozenset[str]], num_perm: int, bands: int,
                    rows: int) -> list[tuple[int, ...] | None]:
    """Band ids of many word sets at once: one numpy pass for a whole batch, since per-report numpy
    calls cost more than their arithmetic. Row i equals band_keys(signature(sets[i]))."""
    keys = [(ws, num_perm, bands, rows) for ws in sets]
    todo = list(dict.fromkeys(k for k in keys if len(k[0]) >= 2 and k not in _BANDS))
    if todo:
        sorted_sets = [sorted(k[0]) for k in todo]
        starts = np.cumsum([0] + [len(ws) for ws in sorted_sets[:-1]])
        sigs = np.minimum.reduceat(_word_rows([w for ws in sorted_sets for w in ws], num_perm), starts, axis=0)
        for k, ids in zip(todo, band_matrix(sigs, bands, rows).tolist()):
            _BANDS[k] = tuple(ids)
        while len(_BANDS) > BANDS_KEPT:
            _BANDS.popitem(last=False)
    return [_BANDS[k] if len(k[0]) >= 2 else None for k in keys]


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


def band_matrix(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Bucket ids (n x bands, int64) for many signatures at once; row i equals band_keys(sigs[i])."""
    sigs = np.atleast_2d(sigs).astype(np.uint64)
    out = np.zeros((sigs.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            h = np.full(sigs.shape[0], np.uint64(b + 1) * _MIX[0], dtype=np.uint64)
            for r in range(rows):
                h ^= sigs[:, b * rows + r] * _MIX[(r + 1) % len(_MIX)]
                h = (h ^ (h >> np.uint64(31))) * _MIX[(r + 2) % len(_MIX)]
            out[:, b] = h
    return out.view(np.int64)


_M64 = (1 << 64) - 1
_MIXI = [int(x) for x in _MIX]


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit bucket id per band (the band number is mixed in, so bands never collide).
    Plain integers for one signature (numpy's per-call overhead dominates at this size);
    the same arithmetic as band_matrix."""
    vals = [int(x) for x in sig[:bands * rows]]
    out = []
    n = len(_MIXI)
    for b in range(bands):
        h = ((b + 1) * _MIXI[0]) & _M64
        for r in range(rows):
            h ^= (vals[b * rows + r] * _MIXI[(r + 1) % n]) & _M64
            h = ((h ^ (h >> 31)) * _MIXI[(r + 2) % n]) & _M64
        out.append(h - (1 << 64) if h >= 1 << 63 else h)
    return out
