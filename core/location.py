"""Where a complaint is: kecamatan, kelurahan, street, landmark and RT/RW, from text or a pin.

Why: routing needs the kecamatan/kelurahan (the OPD's field teams are organised by area) and
deduplication needs a stable "same place" key, so two citizens writing "jl rungkut asri timur
XII" and "Jalan Rungkut Asri Timur 12" about the same broken lamp land on one ticket.

How: ``data/gazetteer.json`` (31 kecamatan, 154 kelurahan, landmarks) is read once. Names are
matched on whole tokens, compacted (lower-case, no spaces/hyphens/dots, old spelling "oe/dj/tj" ->
"u/j/c"), so "Ngagel Rejo" = "Ngagelrejo" and "Genteng" never matches inside "Gentengan". One walk
over the tokens against a prefix set (not hundreds of regexes per text) keeps ``extract`` far
above 5,000 texts/s. Names that are everyday words ("genteng" = roof tile, "ujung" = end) count
only after "kel."/"kec."/"desa" or capitalised on their own; acronyms ("TP", "ITS") only in capitals.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

GAZETTEER = Path(__file__).resolve().parent / "data" / "gazetteer.json"
PIN_MAX_M = 4000.0  # a pin farther than this from every kelurahan centre is outside the city
EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class Place:
    """A place as precise as the citizen made it; every field may be unknown."""

    kecamatan: str | None = None
    kelurahan: str | None = None
    street: str | None = None
    landmark: str | None = None
    rt: str | None = None
    rw: str | None = None
    lat: float | None = None
    lon: float | None = None

    def key(self) -> str | None:
        """The most specific place as one normalised string, for "same place" decisions.

        Street (with its kelurahan, or kecamatan, when known) beats landmark beats kelurahan
        beats kecamatan; RT/RW and coordinates alone say too little to be a key (None).
        """
        area = (f"kel:{(self.kecamatan or '?').lower()}/{self.kelurahan.lower()}" if self.kelurahan
                else f"kec:{self.kecamatan.lower()}" if self.kecamatan else None)
        if self.street:
            return f"street:{self.street}" + (f"|{area}" if area else "")
        if self.landmark:
            return f"landmark:{self.landmark.lower()}"
        return area

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Place:
        """Inverse of to_dict; unknown keys are ignored so stored rows survive schema growth."""
        if not data:
            return cls()
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_TOKEN = re.compile(r"[a-z0-9]+")
_ROMAN = re.compile(r"(?=[ivx]+$)x{0,3}(?:ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10}
_TITLES = {"dr": "dr", "ir": "ir", "h": "h", "hr": "hr", "kh": "kh", "prof": "prof", "drs": "drs", "st": "st",
           "mayjen": "mayjen", "mayjend": "mayjen", "jend": "jend", "letjen": "letjen", "brigjen": "brigjen",
           "kol": "kol", "kapt": "kapt", "laks": "laks", "pang": "panglima", "moh": "moh", "moch": "moh"}
_KEL_PREFIX = {"kel", "kelurahan", "kelurhan", "klurahan", "kelrahan", "desa", "ds", "kalurahan"}
_KEC_PREFIX = {"kec", "kecamatan", "kecamtan", "kcmtn", "kecmatan", "kcm"}
_AREA_PREFIX = _KEL_PREFIX | _KEC_PREFIX
# Names that are also everyday words: need a capital letter or an area prefix to count.
_WEAK = {"genteng", "ujung", "jeruk", "made", "gading", "pakis", "lontar", "jepara", "kemayoran", "mojo",
         "bulak", "genting", "kandangan", "bringin", "beringin", "dolly", "menur", "manyar", "gebang",
         "klampis", "pucang", "contong", "karah", "tunjungan", "frontage", "petekan", "kapalselam"}
# Words that end a street name ("Jl. Kenjeran no 12 depan toko, lampu mati").
_STREET_STOP = set("""
kel kelurahan kec kecamatan desa ds rt rw no nomor nmr nomer blok kav kavling depan dpn dekat dkt deket samping
sebelah sblh belakang blkg seberang sebrang pojok persis tepat pas arah menuju ke di dari dan atau yang yg sudah
udah udh sdh wis wes uwis mati rusak bolong berlubang lubang retak ambles amblas banjir tergenang genangan macet
gelap padam sampah lampu pju got saluran selokan pohon tumbang kabel tiang tidak tdk gak ga gk nggak ngga ora belum
blm durung ada ini itu iki iku tersebut sejak karena krn mohon tolong tlg min admin pak bu bapak ibu mbak rek cak
kak sekitar sekitarnya sangat parah banget bgt lagi lg masih kota surabaya sby telah akan mau bisa harap segera dong
ya kok nih sih deh lho loh kan juga jg saja aja ae kalau kalo klo tapi tp dengan dgn untuk utk buat pada oleh sampai
sampe hingga mulai setiap tiap hari malam pagi siang sore minggu bulan tahun jam pukul kemarin tadi sekarang skrg
kondisi keadaan sering selalu terus banyak nang ndek nak nok karo ambek kaki tol protokol utama umum setapak
alternatif pintas besar kecil sempit lebar baru licin becek berdebu debu rawan ramai sepi jelek hancur lurus masuk
keluar pulang pergi jalan jalannya jl jln gang gg tembus rumah warga sekolah toko warung kantor dinas pemkot polisi
mobil motor truk seperti kayak kyk apa kenapa knp gimana bagaimana kapan mana siapa dimana sebab jadi jd sana sini
situ terjadi mengalami kena kenek sepanjang area kawasan wilayah daerah lokasi alamat tempat posisi menjadi saya
kami kabupaten kab provinsi bergelombang ruksak secara halo hai apabila akses sebelum sesudah setelah namun tetapi
bahwa agar supaya hal masalah kerusakan perbaikan diperbaiki dilakukan km kp kmp komplek kompleks perumahan perum
antara kurang lebih meter m sekali yaitu yakni adalah merupakan terutama khususnya tepatnya terdapat punya milik
kondisinya pernah mengakibatkan menyebabkan akibat sehingga padahal agak cukup dimohon dapat nya pun lah kah
""".split())
_STREET = re.compile(r"(?<![a-z0-9])(?:(jalan|jln|jl)(?:\.|(?![a-z0-9]))(?:[ \t]*(raya)(?![a-z]))?"
                     r"|(gang|gg)(?:\.|(?![a-z])))")
_STREET_WORD = re.compile(r"[ \t]*(?:-[ \t]*)?([a-z]+|\d{1,3})(\.?)")
_BLANK = re.compile(r"[ \t]*")
_GANG_AFTER = re.compile(r"[ \t]*,?[ \t]*(?:gang|gg)(?:\.|(?![a-z]))")
_N = r"[ \t]*[.:]?[ \t]*0*(\d{1,3})(?!\d)"  # " 003", ".3", ": 03"
_RTRW_PAIR = re.compile(r"(?<![a-z])rt[ \t]*/[ \t]*rw" + _N + r"[ \t]*[/\\-][ \t]*0*(\d{1,3})(?!\d)")
_RT = re.compile(r"(?<![a-z])rt" + _N + r"(?:(?:[ \t]*[/\\-][ \t]*(?:rw)?|[ \t,]*rw)" + _N + ")?")
_RW = re.compile(r"(?<![a-z])rw" + _N)


def _spell(word: str) -> str:
    """Old Indonesian spelling to the current one, so "Soetomo" and "Sutomo" are one word."""
    return word.replace("oe", "u").replace("dj", "j").replace("tj", "c")


def _compact(name: str) -> str:
    return "".join(_spell(t) for t in _TOKEN.findall(name.lower()))


def _roman(word: str) -> int | None:
    """'xii' -> 12 for the Roman numerals of Surabaya's numbered streets (I..XXXIX); else None."""
    if not word or not _ROMAN.match(word):
        return None
    vals = [_ROMAN_VALUES[c] for c in word]
    return sum(-v if k + 1 < len(vals) and v < vals[k + 1] else v for k, v in enumerate(vals))


@dataclass(frozen=True)
class _Entry:
    kind: str  # "kec" | "kel" | "lm"
    kecamatan: str | None
    kelurahan: str | None
    landmark: str | None = None
    road: bool = False
    weak: bool = False  # everyday word: needs a capital or an area prefix
    caps: bool = False  # short acronym: needs capitals


@dataclass(frozen=True)
class _Index:
    entries: dict[str, tuple[_Entry, ...]]
    prefixes: frozenset[str]
    roads: dict[str, dict]  # compact road name (no "jl"/"raya") -> landmark record
    kelurahan: tuple[tuple[str, str, float, float], ...]  # (kecamatan, kelurahan, lat, lon)


@cache
def gazetteer() -> dict[str, Any]:
    """The parsed gazetteer.json (read once per process)."""
    return json.loads(GAZETTEER.read_text(encoding="utf-8"))


@cache
def _index() -> _Index:
    data = gazetteer()
    entries: dict[str, list[_Entry]] = {}

    def add(names: list[str], make: Any) -> None:
        for name in names:
            key = _compact(name)
            if key:
                entry = make(weak=key in _WEAK, caps=len(key) <= 3)
                if entry not in entries.setdefault(key, []):
                    entries[key].append(entry)

    kels = []
    for kec in data["kecamatan"]:
        add([kec["name"], *kec["aliases"]], lambda k=kec["name"], **w: _Entry("kec", k, None, **w))
        for kel in kec["kelurahan"]:
            add([kel["name"], *kel["aliases"]], lambda k=kec["name"], l=kel["name"], **w: _Entry("kel", k, l, **w))
            kels.append((kec["name"], kel["name"], *kel["centroid"]))
    roads: dict[str, dict] = {}
    for lm in data["landmarks"]:
        road = lm["kind"] == "road"
        names = [lm["name"], *lm["aliases"]]
        # Prefixed road names are found by the street parser; the rest by the token lookup.
        add([n for n in names if _TOKEN.findall(n.lower())[0] not in ("jl", "jln", "jalan")],
            lambda lm=lm, **w: _Entry("lm", lm["kecamatan"], lm["kelurahan"], lm["name"], road, **w))
        if road:
            for n in names:
                core = [t for t in _TOKEN.findall(n.lower()) if t not in ("jl", "jln", "jalan", "raya")]
                roads.setdefault("".join(_spell(t) for t in core), lm)
    prefixes = {key[:i] for key in entries for i in range(1, len(key) + 1)}
    return _Index({k: tuple(v) for k, v in entries.items()}, frozenset(prefixes), roads, tuple(kels))


def _streets(low: str, cased: str | None = None) -> list[tuple[int, int, str, list[str]]]:
    """(start, end, canonical street, name tokens) for every street mention, in order.

    "jalan" is also the everyday word for road: in a text that uses capitals (`cased`), a
    spelled-out "jalan" only starts a street name when the name is capitalised ("Jalan Laswi").
    """
    found = []
    for m in _STREET.finditer(low):
        if found and m.start() < found[-1][1]:
            continue
        if cased is not None and m.group(1) == "jalan" and not m.group(2):
            q = _BLANK.match(cased, m.end()).end()  # type: ignore[union-attr]
            if q < len(cased) and cased[q].islower():
                continue
        gang = m.group(3) is not None
        words, p = _street_words(low, m.end(), allow_leading_number=gang)
        name = [w for w in words if w != "raya"]  # "Jl. Raya Darmo" and "Jl. Darmo" are one road
        if not name or (not gang and not any(w.isalpha() for w in name)):
            continue
        street = ("gg. " if gang else "jl. ") + " ".join(name)
        if not gang and (g := _GANG_AFTER.match(low, p)):  # "Jl. Kapasari gg 3": the gang is part of it
            more, q = _street_words(low, g.end(), allow_leading_number=True)
            if more:
                street, p = f"{street} gg. {' '.join(more)}", q
        found.append((m.start(), p, street, words))
    return found


def _street_words(low: str, p: int, allow_leading_number: bool) -> tuple[list[str], int]:
    """Name words after a street prefix, up to punctuation, a stop word or a number."""
    words: list[str] = []
    while len(words) < 7:
        m = _STREET_WORD.match(low, p)
        if not m:
            break
        word, dot = m.group(1), m.group(2)
        roman = _roman(word) if words or allow_leading_number else None  # "Timur XII", "gang V"
        if word.isdigit() or roman:  # a number ends the name ("XII/5", "12 no 3")
            if words or allow_leading_number:
                words.append(str(int(word)) if word.isdigit() else str(roman))
                p = m.end(1)
            break
        if word in _STREET_STOP and not (dot and word in _TITLES):
            break
        words.append(_TITLES.get(word) or _spell(word))
        p = m.end()
        if dot and word not in _TITLES and len(word) > 1:  # a full stop ends the sentence
            p = m.end(1)
            break
    return words, p


def _stands_out(original: str, spans: list[tuple[int, int]], i: int, j: int, acronym: bool) -> bool:
    """Is tokens i..j written as a name on its own: "Genteng" mid-sentence, "TP" among small letters?

    Not at a sentence start ("Ujung jalan ..."), not inside a longer capitalised name
    ("Solokan Jeruk", "Gading Junti Asri") and, for acronyms, not inside a shouted phrase.
    """
    start, end = spans[i][0], spans[j][1]
    surface, before = original[start:end], original[:start].rstrip()
    if acronym:
        if not surface.isupper():
            return False
    elif not (surface[:1].isupper() and surface[1:2].islower()) or not before or before[-1] in ".!?:\n\"(":
        return False
    for k, gap in ((i - 1, before[spans[i - 1][1]:] if i else "x"),
                   (j + 1, original[end:spans[j + 1][0]] if j + 1 < len(spans) else "x")):
        if gap.strip() == "":
            word = original[spans[k][0]:spans[k][1]]
            if (word.isupper() and word.isalpha()) if acronym else word[:1].isupper():
                return False
    return True


def _rt_rw(low: str) -> tuple[str | None, str | None]:
    """RT and RW as plain numbers ("RT.003/RW.005", "rt3/rw5", "rt/rw 03/05" -> "3", "5")."""
    m = _RTRW_PAIR.search(low) or _RT.search(low)
    rt, rw = (m.group(1), m.group(2)) if m else (None, None)
    if rw is None and (m := _RW.search(low)):
        rw = m.group(1)
    return (str(int(rt)) if rt else None), (str(int(rw)) if rw else None)


def extract(text: str) -> Place:
    """Kecamatan, kelurahan, street, landmark and RT/RW named in `text` (see module docstring)."""
    if not text:
        return Place()
    low = text.lower()
    original = text if len(low) == len(text) else low  # capitals are only trusted when aligned
    idx = _index()
    streets = _streets(low, original if original is text and not text.islower() else None)
    words = _TOKEN.findall(low)
    if "oe" in low or "dj" in low or "tj" in low:
        words = [_spell(w) for w in words]
    spans: list[tuple[int, int]] = []  # token offsets, computed on the first hit only
    prefixes, entries = idx.prefixes, idx.entries

    kec_found: list[tuple[str, bool]] = []  # (kecamatan, prefixed)
    kel_found: list[list[tuple[str, str]]] = []  # options (kecamatan, kelurahan) per mention
    landmarks: list[_Entry] = []
    whole_street_area: list[tuple[_Entry, ...]] = []  # "Jl. Keputih": the street is the area's name
    i, n = 0, len(words)
    while i < n:
        s, best, j = words[i], None, i
        while s in prefixes:  # longest gazetteer name starting at token i
            if s in entries:
                best = (j, s)
            j += 1
            if j >= n or j - i >= 8:
                break
            s += words[j]
        if best is None:
            i += 1
            continue
        spans = spans or [m.span() for m in _TOKEN.finditer(low)]
        (j, key), prev = best, (words[i - 1] if i else "")
        start, end, cands = spans[i][0], spans[j][1], entries[key]
        if any(c.caps or c.weak for c in cands) and prev not in _AREA_PREFIX and not _stands_out(
                original, spans, i, j, acronym=any(c.caps for c in cands)):
            cands = tuple(c for c in cands if not (c.caps or c.weak))
        i = j + 1
        inside = next((sw for sw in streets if sw[0] <= start and end <= sw[1]), None)
        if cands and inside:  # a name inside a street name is not the area ("Jl. Ngagel Jaya")
            if _compact(" ".join(inside[3])) == key:
                whole_street_area.append(tuple(c for c in cands if c.kind != "lm"))
            continue
        if not cands:
            continue
        kind = {c.kind for c in cands}
        # "kel. Genteng" is the kelurahan, a bare "Genteng" the kecamatan, "Taman Bungkul" a landmark
        want = ("kel" if prev in _KEL_PREFIX and "kel" in kind else "kec" if prev in _KEC_PREFIX and "kec" in kind
                else "lm" if "lm" in kind else "kec" if "kec" in kind else "kel")
        chosen = [c for c in cands if c.kind == want]
        if want == "kec":
            kec_found.append((chosen[0].kecamatan, prev in _KEC_PREFIX))  # type: ignore[arg-type]
        elif want == "kel":
            kel_found.append([(c.kecamatan, c.kelurahan) for c in chosen])  # type: ignore[misc]
        else:
            landmarks.extend(chosen[:1])

    kecamatan = next((k for k, pre in kec_found if pre), kec_found[0][0] if kec_found else None)
    # The first kelurahan that agrees with the kecamatan; failing that, an unambiguous one wins
    # (a kelurahan is more specific); "Wonorejo" alone (Tegalsari or Rungkut) leaves kecamatan open.
    fits = [[o for o in options if kecamatan in (None, o[0])] for options in kel_found]
    pick = next((f for f in fits if f), None) or next((o for o in kel_found if len(o) == 1), None)
    kelurahan = pick[0][1] if pick else None
    kecamatan = pick[0][0] if pick and len(pick) == 1 else kecamatan

    street = road = None
    if streets:
        street, name = streets[0][2], streets[0][3]
        road = idx.roads.get(_compact(" ".join(w for w in name if w != "raya")))
        if road is not None and " gg. " not in street:
            street = _canonical_road(road["name"])
    landmark = next((lm for lm in landmarks if not lm.road), None) or (landmarks[0] if landmarks else None)
    if street is None:  # "macet di Ahmad Yani", "MERR": a road named without "Jl."
        road_lm = next((lm for lm in landmarks if lm.road), None)
        street = _canonical_road(road_lm.landmark) if road_lm else None  # type: ignore[arg-type]
    lm_kec, lm_kel, lm_name = ((landmark.kecamatan, landmark.kelurahan, landmark.landmark) if landmark
                               else (road["kecamatan"], road["kelurahan"], road["name"]) if road
                               else (None, None, None))
    if kelurahan is None and lm_kel and kecamatan in (None, lm_kec):
        kecamatan, kelurahan = lm_kec, lm_kel
    elif kecamatan is None and lm_kec:
        kecamatan = lm_kec
    fits = [[c for c in cands if kecamatan in (None, c.kecamatan)] for cands in whole_street_area]
    if kelurahan is None and road is None and (fit := next((f for f in fits if len(f) == 1), None)):
        kecamatan, kelurahan = fit[0].kecamatan, fit[0].kelurahan  # "Jl. Keputih" is in Keputih
    rt, rw = _rt_rw(low)
    return Place(kecamatan=kecamatan, kelurahan=kelurahan, street=street, landmark=lm_name, rt=rt, rw=rw)


@cache
def _canonical_road(name: str) -> str:
    """A road landmark's name in street form ("Jl. Dr. Ir. H. Soekarno" -> "jl. dr ir h sukarno")."""
    found = _streets(name.lower())
    return found[0][2] if found else name.lower()


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in metres between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def nearest_kelurahan(lat: float, lon: float) -> Place:
    """The kelurahan whose centre is nearest a Telegram pin (with its kecamatan).

    Centroids are approximate, so this is a best guess near borders; a pin farther than
    PIN_MAX_M from every centre (outside Surabaya) keeps only its coordinates.
    """
    d, kec, kel = min((distance_m((lat, lon), (klat, klon)), kec, kel)
                      for kec, kel, klat, klon in _index().kelurahan)
    return Place(lat=lat, lon=lon) if d > PIN_MAX_M else Place(kecamatan=kec, kelurahan=kel, lat=lat, lon=lon)
