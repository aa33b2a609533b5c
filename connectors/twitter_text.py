"""Text rules for public replies on X: weighted length (twitter-text v3), shortening, redaction.

X does not count characters: it counts *weights* (twitter-text config v3). Latin, Indonesian,
common punctuation count 1; everything else (CJK, most symbols) counts 2; an emoji sequence
(flags, skin tones, ZWJ families, keycaps) counts 2 as a whole; any URL counts 23 whatever its
length (t.co wrapping). A tweet may weigh at most 280. Counting too little makes X refuse the
reply, so every uncertain case here errs on the heavy side.

A public reply must never carry a citizen's personal data: `redact` removes phone numbers,
NIK (16 digits), e-mail addresses and house-level addresses the citizen did not post publicly.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WEIGHTED = 280
URL_WEIGHT = 23
_WEIGHT_ONE = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

_TLDS = "com|net|org|id|io|co|info|me|ly|app|dev|gov|edu|biz|xyz|link|site|online|news"
_URL = re.compile(
    r"(?i)(?<![\w@.])(?:https?://[^\s<>\"]+"
    r"|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:" + _TLDS + r")(?![\w-])(?:/[^\s<>\"]*)?)"
)
_TRAILING = ".,;:!?)]}'\"…"

# Code points that start an emoji presentation sequence (Extended_Pictographic, coarse ranges).
_PICTO = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF), (0x2190, 0x21FF),
          (0x25A0, 0x25FF), (0x2900, 0x297F), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299),
          (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
          (0x2139, 0x2139), (0x24C2, 0x24C2))
_MODIFIERS = {0xFE0F, 0xFE0E, 0x20E3} | set(range(0x1F3FB, 0x1F400)) | set(range(0xE0020, 0xE0080))
_ZWJ = 0x200D


def _in(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_ri(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _emoji_end(cps: list[int], i: int) -> int:
    """Index just past the emoji sequence starting at i, or i when none starts there."""
    cp = cps[i]
    nxt = cps[i + 1] if i + 1 < len(cps) else None
    if _is_ri(cp) and nxt is not None and _is_ri(nxt):
        return i + 2
    keycap = chr(cp) in "0123456789#*" and nxt in (0xFE0F, 0x20E3)
    if not (_in(cp, _PICTO) or keycap):
        return i
    j = i + 1
    while j < len(cps):
        if cps[j] in _MODIFIERS:
            j += 1
        elif cps[j] == _ZWJ and j + 1 < len(cps) and _in(cps[j + 1], _PICTO):
            j += 2
        else:
            break
    return j


def _plain_weight(segment: str) -> int:
    cps = [ord(c) for c in segment]
    total, i = 0, 0
    while i < len(cps):
        end = _emoji_end(cps, i)
        if end > i:
            total += 2
            i = end
            continue
        total += 1 if _in(cps[i], _WEIGHT_ONE) else 2
        i += 1
    return total


def url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _URL.finditer(text):
        start, end = m.span()
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def weighted_length(text: str) -> int:
    """The length X checks against 280 (twitter-text v3: NFC, URLs 23, emoji 2, CJK 2, Latin 1)."""
    text = unicodedata.normalize("NFC", text)
    total, pos = 0, 0
    for start, end in url_spans(text):
        total += _plain_weight(text[pos:start]) + URL_WEIGHT
        pos = end
    return total + _plain_weight(text[pos:])


def fit(text: str, limit: int) -> str:
    """The longest prefix of `text`, cut between words (never inside a URL), that weighs <= limit."""
    text = unicodedata.normalize("NFC", text.strip())
    if weighted_length(text) <= limit:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the largest k with weight(words[:k]) <= limit
        mid = (lo + hi + 1) // 2
        if weighted_length(" ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    head = " ".join(words[:lo])
    if lo == len(words):
        return head
    if head and weighted_length(head) >= limit // 2:
        return head.rstrip(",;:-")
    # The next word is very long: cut it by characters, unless it is a link (never cut a URL).
    word = words[lo]
    if url_spans(word):
        return head
    out = f"{head} " if head else ""
    for ch in word:
        if weighted_length(out + ch) > limit:
            break
        out += ch
    return out.rstrip()


def shorten(text: str, suffix: str, limit: int = MAX_WEIGHTED) -> str:
    """`text` cut to fit, then "…" and `suffix` (a link or a pointer to the DM), within `limit`."""
    if weighted_length(text) <= limit and not suffix:
        return text.strip()
    tail = f"… {suffix}".rstrip() if suffix else "…"
    head = fit(text, limit - weighted_length(tail) - 1)
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("\n"))
    if end > 0 and weighted_length(head[:end + 1]) >= 0.6 * limit:  # end on a whole sentence when one is near
        head, tail = head[:end + 1], f" {suffix}" if suffix else ""
    out = f"{head}{tail}" if head else tail.lstrip("… ")
    assert weighted_length(out) <= limit, out
    return out


# ------------------------------------------------------------------ personal data

_EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NIK = re.compile(r"(?<![\w-])(?:\d{16}|\d{4}[ .-]\d{4}[ .-]\d{4}[ .-]\d{4}|\d{6}[ .-]\d{6}[ .-]\d{4})(?![\w-])")
_PHONE = re.compile(
    r"(?<![\w-])(?:\(?(?:\+?62|0)\)?[\s.-]?\(?\d{2,4}\)?(?:[\s.-]?\d{3,4}){1,3})(?![\w-])"
)
_ADDRESS = re.compile(
    r"(?i)\b(?:jl|jln|jalan|gg|gang|perum|perumahan|blok|komplek|kompleks)\.?\s+"
    r"[^\n,;:()]{1,60}?\s*(?:no|nomor|nmr|kav)\.?\s*\d+[a-z]?(?:\s*[/-]\s*\d+[a-z]?)?\b"
)
_RTRW = re.compile(r"(?i)\bRT\.?\s*0*\d{1,3}\s*(?:/|,|\s)\s*RW\.?\s*0*\d{1,3}\b|\bR[TW]\.?\s*0*\d{1,3}\b")


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def redact(text: str, public_text: str = "") -> str:
    """`text` without phone numbers, NIK, e-mail addresses, and addresses (street + number, RT/RW)
    unless the citizen themself posted that address publicly (`public_text`, their tweet)."""
    out = _EMAIL.sub("[email disamarkan]", text)
    out = _NIK.sub("[NIK disamarkan]", out)

    def phone(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return "[nomor disamarkan]" if len(digits) >= 8 else m.group(0)

    out = _PHONE.sub(phone, out)
    public = _norm(public_text)

    def address(m: re.Match[str]) -> str:
        return m.group(0) if public and _norm(m.group(0)) in public else "[alamat disamarkan]"

    out = _ADDRESS.sub(address, out)
    return _RTRW.sub(address, out)
