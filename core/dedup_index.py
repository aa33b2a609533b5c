"""What deduplication compares (features of a report) and where it looks for candidates (the index).

Features: the stemmed words of the report (core.normalise), split into *problem* words (the
OPD vocabulary: "lubang", "lampu", "sampah") and *place* words (a street after "jalan", a
landmark after "depan", RT/RW numbers, names the dictionary does not know). Two reports can
only be one case when they share problem words and do not name different places.

Candidates come from three kinds of buckets, all scoped to one OPD so a lookup never even sees
another OPD's reports: MinHash LSH bands over the words (similar wording), place x problem
pairs (a paraphrase of the same problem at the same street) and ~330 m geo cells (geotagged
reports). The buckets live in core.dedup_store (Redis, or memory without Redis).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Iterable

import numpy as np

from core.lsh import band_keys
from core.normalise import stopwords, tokens, vocabulary

GEO_CELL = 0.003  # degrees, ~330 m in Surabaya
MAX_PAIRS = 24

# Words that introduce a place; the words after them (up to three) name it.
PLACE_MARKERS = {
    "di", "jalan", "gang", "kelurahan", "kecamatan", "kampung", "perumahan", "perum", "depan", "dekat",
    "sebelah", "samping", "seberang", "belakang", "perempatan", "pertigaan", "simpang", "bundaran",
    "taman", "pasar", "terminal", "stasiun", "masjid", "musala", "sekolah", "sdn", "smpn", "sd", "smp",
    "puskesmas", "rs", "rsud", "tps", "jembatan", "kali", "sungai", "blok", "raya", "kompleks", "desa",
    "dusun", "wilayah", "daerah", "kawasan", "lapangan", "balai", "kantor", "halte", "sepanjang", "area",
    "jala", "jaln", "jaan", "jlan", "gng",  # "jalan" and "gang" mistyped
}
# Things after which a place name often follows ("trotoar kenjeran", "got wonorejo").
THING_MARKERS = {"trotoar", "lampu", "got", "saluran", "pju", "tps", "pasar"}
NUMBERED = {"rt", "rw", "gang", "no", "nomor", "blok"}
# Words after a marker that end a place name (they say what happens there, or how).
NOT_PLACE = {
    "sudah", "sejak", "sampai", "mohon", "tolong", "admin", "min", "pak", "bu", "sekitar", "sini", "situ", "atas",
    "bawah", "tengah", "pinggir", "sana", "kota", "surabaya", "rumah", "warga", "utara", "selatan", "barat", "timur",
    "indah", "rek", "tiap", "setiap", "malam", "pagi", "siang", "sore", "hari", "terus", "saja", "semua", "kabeh",
    "ada", "yang", "ini", "itu", "karena", "dan", "atau", "tapi", "juga", "lagi", "masih", "belum", "tidak",
    "bikin", "buat", "jadi", "ketutup", "tutup", "kena", "pas", "kok", "gara", "akibat", "makin", "mau", "kalau",
    "sama", "dong", "deh", "nih", "tuh", "banget", "gak", "ga", "kemarin", "tadi", "dari", "ke", "mulai",
    "narik", "nutup", "ngalangi", "nggawe", "marai", "langsung", "pas", "lho", "sejak", "selama", "waktu",
    "menutup", "masuk", "keluar", "jatuh", "lewat", "melintang", "memenuhi", "penuh", "terpaksa", "jualan",
    "berjualan", "pejalan", "ditindaklanjuti", "tindaklanjuti", "diperbaiki", "dicek", "segera", "kemarin",
    "makasih", "terimakasih", "thanks", "please", "cepet", "cepat", "min", "mimin", "gan", "sis", "kak",
}
# Markers after which any name counts (a street is often an everyday word: "jalan pemuda").
STREET_MARKERS = {"jalan", "gang", "kelurahan", "kecamatan", "kampung", "perumahan", "perum", "desa", "dusun",
                  "raya", "kompleks", "blok", "jala", "jaln", "jaan", "jlan", "gng"}
ABBREVIATIONS = {
    "dk": "dukuh", "jl": "jalan", "jln": "jalan", "jaln": "jalan", "jala": "jalan", "jlan": "jalan", "dalan": "jalan",
    "dalane": "jalan", "ratan": "jalan", "gg": "gang", "gng": "gang", "kel": "kelurahan", "kec": "kecamatan",
    "nang": "di", "ning": "di", "nak": "di", "neng": "di", "deket": "dekat", "cedak": "dekat", "perum": "perumahan",
    "d": "di", "dpn": "depan", "dkt": "dekat", "sblh": "sebelah", "no": "nomor",
}
_RAW = re.compile(r"[a-z0-9]+")
_MENTION = re.compile(r"(?:[@#]|https?://)\S+")
# Second words of street names that many streets share: never enough on their own.
PLACE_SUFFIX = {
    "jaya", "raya", "sari", "indah", "baru", "barat", "timur", "utara", "selatan", "tengah", "asri", "permai",
    "madya", "kidul", "lor", "wetan", "kulon", "harapan", "makmur", "mulya", "mulyo", "rejo", "kali", "lama",
}
# Words in the OPD vocabulary that do not name a problem.
GENERIC = {
    "jalan", "tolong", "mohon", "warga", "kota", "umum", "rt", "rw", "tidak", "besar", "kecil", "tinggi",
    "atas", "bawah", "dalam", "luar", "baru", "lama", "hari", "bulan", "tahun", "anak", "ibu", "bapak",
    "daerah", "desa", "dinas", "pemerintah", "admin", "lapor", "laporan", "keluh", "keluhan", "segera",
    "sudah", "belum", "masih", "sangat", "parah", "banyak", "orang", "masyarakat", "surabaya", "pak", "bu",
    "kampung", "wilayah", "kawasan", "rumah", "depan", "dekat", "sekitar", "lokasi", "area", "sini", "situ",
    "e", "c", "3", "sampai", "bisa", "tanpa", "kerja", "waktu", "lewat", "tiba", "naik", "minta", "terima",
    "pdam", "dishub", "dlh", "satpol", "pp", "pemkot", "petugas", "tangan", "tindak", "lanjut", "bangun", "makan",
    "badan", "mobil", "motor", "kendara", "kendaraan", "terus", "semua", "lalu", "kasih", "hujan", "tugas",
}
# Problem words that describe a state, not an object: sharing only these is not the same problem
# ("jalan rusak" and "lampu rusak").
STATES = {
    "rusak", "mati", "mampet", "bocor", "putus", "hilang", "macet", "padam", "kotor", "liar", "parah",
    "buruk", "hancur", "tumbang", "roboh", "jatuh", "patah", "bau", "gelap", "penuh", "pecah", "lambat",
    "mahal", "habis", "langka", "sulit", "susah", "bahaya", "ganggu", "keluar", "tutup", "air", "tarif",
    "semrawut", "lalat", "busuk", "sengat", "angkut", "evakuasi", "tangan", "rawan", "lebar", "dalam",
}
# The thing a complaint is about. Two reports naming different things are different problems.
HEADS = {
    "sampah", "tps", "lampu", "lampulintas", "lubang", "banjir", "saluran", "pohon", "pipa", "parkir", "pkl",
    "trotoar", "jembatan", "kabel", "tiang", "api", "kebakaran", "ular", "tawon", "anjing", "puskesmas",
    "sekolah", "ktp", "kk", "akta", "bansos", "pajak", "pbb", "reklame", "bangunan", "angkot", "bus", "halte",
    "rambu", "marka", "asap", "limbah", "sungai", "taman", "pompa", "hidran", "obat", "pungli", "lpg",
}
# One word per problem, whatever word the reporter used (stemmed forms).
CANON = {
    "genang": "banjir", "luap": "banjir", "luber": "banjir", "rendam": "banjir", "lutut": "banjir",
    "amblas": "lubang", "ambles": "lubang", "bolong": "lubang", "growong": "lubang", "jugang": "lubang",
    "padam": "mati", "nyala": "mati", "alir": "mati", "keluar": "mati", "ambruk": "roboh", "tumbang": "roboh",
    "sumbat": "mampet", "buntu": "mampet", "pecah": "bocor", "numpuk": "tumpuk", "tumpu": "tumpuk",
    "penerangan": "lampu", "pju": "lampu", "gorong": "saluran", "got": "saluran", "drainase": "saluran",
    "selokan": "saluran", "comberan": "saluran", "dagang": "pkl", "lapak": "pkl", "jukir": "parkir",
    "ledeng": "air", "uwit": "pohon", "dahan": "pohon", "ranting": "pohon", "aspal": "lubang",
    "salur": "saluran", "apill": "lintas", "bangjo": "lintas", "merah": "lintas", "traffic": "lintas",
}
EXTRA_PROBLEM = {
    "tumpuk", "angkut", "genang", "lutut", "antre", "antri", "lubang", "gelap", "mogok", "banjir", "luap",
    "luber", "sumbat", "keruh", "sampah", "kabel", "tiang", "pompa", "bocor", "pipa", "tawon", "ular", "api",
    "asap", "pohon", "dahan", "ranting", "aspal", "retak", "alir", "nyala", "padam", "comberan", "lapak",
    "ledeng", "numpuk", "tumpu", "lalat", "busuk", "sengat", "semrawut", "pkl", "saluran", "lintas",
}


@cache
def problem_vocabulary() -> frozenset[str]:
    """Stemmed words of every OPD vocabulary entry, without words that only say where or how much."""
    import yaml

    from core.normalise import DATA

    raw = yaml.safe_load((DATA / "opd_terms.yaml").read_text(encoding="utf-8")) or {}
    words: set[str] = set(EXTRA_PROBLEM)
    for opd, entries in raw.items():
        if opd == "NONE":
            continue
        for entry in entries or []:
            words.update(tokens(str(entry)))
    return frozenset(w for w in words if w not in GENERIC and w not in PLACE_MARKERS and not w.isdigit())


@cache
def _stem(word: str) -> str:
    got = tokens(word)
    return got[0] if got else ""


def _raw_stem(word: str) -> str:
    from core.normalise import stem

    return stem(word)


def _head_typo(word: str) -> tuple[str, ...]:
    """A head word missing its last letter or two ("poho", "parki", "luban")."""
    return _head_cuts().get(word, ())


def _cut_index(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each word with its last letter or two cut off -> the words it could be (in `words`' order):
    one dictionary lookup instead of comparing a new word with every word."""
    out: dict[str, tuple[str, ...]] = {}
    for w in words:
        for cut in dict.fromkeys((w[:-1], w[:-2])):
            if cut:
                out[cut] = out.get(cut, ()) + (w,)
    return out


@cache
def _head_cuts() -> dict[str, tuple[str, ...]]:
    return _cut_index(HEADS)


@cache
def _common_cuts() -> dict[str, tuple[str, ...]]:
    return _cut_index(NOT_PLACE | GENERIC | stopwords() | PLACE_MARKERS)


def _problem_terms(toks: list[str]) -> frozenset[str]:
    prob = problem_vocabulary()
    out: set[str] = set()
    for t in toks:
        if t in prob or t in CANON:
            out.update(CANON.get(t, t).split())
        elif len(t) >= 4:
            out.update(_head_typo(t))
    if "lintas" in out:  # a traffic light is not a street light
        out -= {"lampu", "lintas"}
        out.add("lampulintas")
    return frozenset(out - GENERIC)


@dataclass(frozen=True)
class Features:
    words: frozenset[str]
    problem: frozenset[str]
    place: frozenset[str]  # names after a place marker ("jalan kertajaya", "depan rsi"), the landmark
    names: frozenset[str]  # words the dictionary does not know before the problem ("Bratang banjir")
    nums: frozenset[str] = frozenset()  # "rt3", "rw2", "gang5": details, never enough on their own
    kel: str | None = None  # kelurahan from the gazetteer
    lat: float | None = None
    lon: float | None = None
    primary: str | None = None  # the first thing named: the subject of the complaint

    def to_json(self) -> dict[str, Any]:
        return {"w": sorted(self.words), "p": sorted(self.problem), "l": sorted(self.place),
                "n": sorted(self.names), "u": sorted(self.nums), "k": self.kel, "g": [self.lat, self.lon],
                "h": self.primary}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Features":
        g = d.get("g") or [None, None]
        return cls(frozenset(d["w"]), frozenset(d["p"]), frozenset(d["l"]), frozenset(d["n"]),
                   frozenset(d.get("u") or ()), d.get("k"), g[0], g[1], d.get("h"))

    @classmethod
    def of_doc(cls, doc: dict[str, Any]) -> "Features":
        """An index document's features, parsed once however many lookups of a batch judge it
        (kept in the document under "_F": only for documents read from the index)."""
        f = doc.get("_F")
        if f is None:
            f = doc["_F"] = cls.from_json(doc["f"])
        return f

    @property
    def where(self) -> frozenset[str]:
        return self.place | self.names


def _common_typo(word: str) -> bool:
    return len(word) >= 4 and word in _common_cuts()


@lru_cache(maxsize=50_000)
def _known(word: str) -> bool:
    """An everyday word (not a Surabaya place name the gazetteer knows, like "manyar")."""
    vocab = vocabulary()
    return (word in vocab or _raw_stem(word) in vocab) and word not in gazetteer_words()


@cache
def gazetteer_words() -> frozenset[str]:
    """Words of Surabaya's kecamatan, kelurahan and road names (core/data/gazetteer.json)."""
    import json

    from core.normalise import DATA

    path = DATA / "gazetteer.json"
    if not path.exists():
        return frozenset()
    g = json.loads(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for kec in g.get("kecamatan", []):
        names += [kec.get("name", ""), *kec.get("aliases", [])]
        for kel in kec.get("kelurahan", []):
            names += [kel.get("name", ""), *kel.get("aliases", [])]
    for lm in g.get("landmarks", []):
        if lm.get("kind") == "road":
            names += [lm.get("name", ""), *lm.get("aliases", [])]
    words = {w for n in names for w in _RAW.findall(n.lower()) if len(w) >= 4}
    return frozenset(words - PLACE_MARKERS - PLACE_SUFFIX - NOT_PLACE - GENERIC - {"road", "frontage"})


@lru_cache(maxsize=50_000)  # a pure function of the word: the tables are fixed per process
def _stop_place(word: str) -> bool:
    """Whether a word ends a place name. Checked on the word as written (stemmed, no slang), so
    "banyu" in "Banyu Urip" stays a name although slang makes it "air"."""
    from core.normalise import stem

    if word in gazetteer_words():  # "banyu" in "Banyu Urip" is a name, although slang makes it "air"
        return False
    if _common_typo(word):  # "tolon", "makasi": a common word missing its end
        return True
    st, sl = stem(word), _stem(word)  # as written, and through the slang table ("mambu" = "bau")
    if (not sl or sl in problem_vocabulary() or sl in CANON or sl in STATES or sl in NOT_PLACE or sl in GENERIC
            or sl in stopwords()):
        return True
    return (word in PLACE_MARKERS or word in NUMBERED or word in NOT_PLACE or st in NOT_PLACE or st in STATES
            or word in stopwords() or st in problem_vocabulary() or st in CANON or st in GENERIC or len(word) < 2)


def _places(words: list[str], norm_words: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(names after markers in the words as written, unknown words of the normalised text, RT/RW/gang numbers)."""
    prob, stop, vocab = problem_vocabulary(), stopwords(), vocabulary()
    strong: set[str] = set()
    nums: set[str] = set()
    for i, w in enumerate(words):
        if w not in PLACE_MARKERS and w not in NUMBERED and w not in THING_MARKERS:
            continue
        run: list[str] = []
        for k, nxt in enumerate(words[i + 1:i + 4]):
            if nxt.isdigit():
                if w in NUMBERED:
                    nums.add(f"{w}{int(nxt)}")
                break
            if _stop_place(nxt):
                break
            if not run and w not in STREET_MARKERS and _known(nxt):
                # After "depan", "dekat", "di" an everyday word is a place only when a name follows it
                # ("di dukuh kupang" yes, "depan sdn penuh" no).
                after = words[i + 2 + k] if i + 2 + k < len(words) else ""
                if not after or _known(after) or _stop_place(after):
                    break
            run.append(nxt)
        strong.update(x for x in run if len(x) >= 3)
        if len(run) >= 2:
            strong.add("".join(run[:2]))  # "gayung sari" = "gayungsari"
    names: set[str] = set()
    for w in norm_words:
        st = _stem(w)
        if strong and (st in prob or st in CANON):
            break  # with a named place, unknown words after the problem are rarely places
        if len(w) >= 4 and w not in vocab and st not in vocab and w not in stop and w not in NOT_PLACE \
                and not w.isdigit() and w not in PLACE_MARKERS:
            names.add(w)
    return strong, names - strong, nums


def features(text: str, place: Any = None, lat: float | None = None, lon: float | None = None) -> Features:
    """Features of one report; `place` is core.location.Place (kelurahan and landmark are used)."""
    from core.normalise import normalise

    toks = tokens(text or "")
    raw = _MENTION.sub(" ", (text or "").lower())
    strong, names, nums = _places([ABBREVIATIONS.get(w, w) for w in _RAW.findall(raw)], normalise(text or "").split())
    kel = None
    if place is not None:
        if getattr(place, "kelurahan", None):
            kel = "".join(normalise(place.kelurahan).split())
        landmark = getattr(place, "landmark", None)
        if landmark:
            strong.update(t for t in normalise(landmark).split() if not _stop_place(t) and len(t) >= 3)
        lat = lat if lat is not None else getattr(place, "lat", None)
        lon = lon if lon is not None else getattr(place, "lon", None)
    words = frozenset(CANON.get(t, t) for t in toks if t not in stopwords())
    problem = _problem_terms(toks)
    primary = next((h for t in toks for h in (CANON.get(t, t).split() + list(_head_typo(t) if len(t) >= 4 else ()))
                    if h in HEADS), None)
    if primary == "lampu" and "lampulintas" in problem:
        primary = "lampulintas"
    return Features(words, problem, frozenset(strong), frozenset(names - strong), frozenset(nums),
                    kel, lat, lon, primary)


def same_place(a: frozenset[str], b: frozenset[str]) -> set[str]:
    """Place words two reports share, allowing a typo ("simokert" ~ "simokerto")."""
    shared = set(a & b) - PLACE_SUFFIX
    if not shared:
        for x in a - PLACE_SUFFIX:
            for y in b - PLACE_SUFFIX:
                if min(len(x), len(y)) >= 5 and x[:2] == y[:2] and _alike(x, y):
                    shared.add(f"{x}~{y}")  # "tambak" ~ "tambakwedi", "dipenogoro" ~ "diponegoro"
    return shared


@lru_cache(maxsize=100_000)
def _alike(x: str, y: str) -> bool:
    from difflib import SequenceMatcher

    return x.startswith(y) or y.startswith(x) or SequenceMatcher(None, x, y).ratio() >= 0.78


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(1.0, a)))


def bucket_names(f: Features, opd: str, sig: np.ndarray | None, bands: int, rows: int,
                 neighbours: bool, band_ids: list[int] | None = None) -> list[str]:
    """Every bucket a report is stored in (neighbours=False) or looked up in (neighbours=True)."""
    names: list[str] = []
    if band_ids is None and sig is not None and len(f.words) >= 2:
        band_ids = band_keys(sig, bands, rows)
    names += [f"b{k}" for k in band_ids or ()]
    objects = sorted(f.problem - STATES) or sorted(f.problem)
    pairs = [f"p{pl}|{pr}" for pl in sorted(f.where) for pr in objects]
    names += pairs[:MAX_PAIRS]
    if f.kel:
        names += [f"k{f.kel}|{pr}" for pr in objects]
    if f.lat is not None and f.lon is not None:
        ci, cj = int(math.floor(f.lat / GEO_CELL)), int(math.floor(f.lon / GEO_CELL))
        cells = [(ci + di, cj + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)] if neighbours else [(ci, cj)]
        names += [f"g{a}:{b}" for a, b in cells]
    return [f"{opd}:{n}" for n in names]
