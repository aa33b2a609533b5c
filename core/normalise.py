"""Text normalisation for routing: informal Indonesian and Suroboyoan into plain words.

``normalise(text)`` gives lower-case words separated by single spaces: URLs, @mentions and
e-mail addresses removed, hashtags split ("#JalanRusak" -> "jalan rusak"), emoji mapped to a
word where one means something for routing (🔥 -> "api") and dropped otherwise, repeated letters
squashed ("tolonggg" -> "tolong"), "anak2" -> "anak anak", informal and Suroboyoan words
replaced by their formal Indonesian form (``core/data/slang.tsv`` plus a small table here),
Suroboyoan possessive suffixes removed ("dalane", "dalan e" -> "jalan"), and an unknown word one
dropped, doubled or swapped letter away from exactly one routing word fixed ("sapmah" -> "sampah";
place names of the gazetteer and words with a known stem are left alone). Numbers stay ("rt 03",
"gg 5", "lpg 3 kg").

``tokens(text)`` stems the normalised words with PySastrawi (cached per word) and drops
stopwords, except words that matter for routing (every word of the OPD vocabulary in
``core/data/opd_terms.yaml`` and a few more), so "lalu lintas" and "air tidak keluar" survive.

Everything here is pure and deterministic; word tables are read once per process.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

# Suroboyoan / Javanese and chat words that matter for routing. The shared slang table
# (data/slang.tsv) wins where both define a word; this table fills what it lacks.
_BUILTIN_SLANG: dict[str, str] = {
    # Suroboyoan
    "dalan": "jalan", "dalanan": "jalan", "ratan": "jalan", "gang": "gang", "gg": "gang",
    "banyu": "air", "omah": "rumah", "omahe": "rumah", "uwong": "orang", "wong": "orang",
    "nang": "di", "nak": "di", "teko": "dari", "tekan": "sampai", "nganti": "sampai",
    "ambek": "dengan", "karo": "dengan", "iki": "ini", "iku": "itu", "kuwi": "itu", "ikai": "ini",
    "opo": "apa", "yokopo": "bagaimana", "yaopo": "bagaimana", "piye": "bagaimana", "lapo": "mengapa",
    "wis": "sudah", "uwis": "sudah", "wes": "sudah", "wis suwe": "sudah lama", "durung": "belum",
    "gak": "tidak", "ga": "tidak", "gk": "tidak", "ngga": "tidak", "nggak": "tidak", "ndak": "tidak",
    "gaiso": "tidak bisa", "gabisa": "tidak bisa", "iso": "bisa", "isok": "bisa", "ora": "tidak",
    "suwe": "lama", "sik": "masih", "sek": "masih", "akeh": "banyak", "okeh": "banyak", "sitik": "sedikit",
    "gede": "besar", "cilik": "kecil", "dowo": "panjang", "jero": "dalam", "duwur": "atas",
    "lobang": "lubang", "bolong": "lubang", "growong": "lubang", "jugangan": "lubang",
    "ambruk": "roboh", "rubuh": "roboh", "ambles": "amblas", "nyemplung": "jatuh", "tibo": "jatuh",
    "ceblok": "jatuh", "kepleset": "terpeleset", "kobong": "terbakar", "kobongan": "kebakaran",
    "geni": "api", "uwit": "pohon", "wit": "pohon", "tugel": "patah", "sempal": "patah",
    "mambu": "bau", "ambune": "bau", "ambu": "bau", "bosok": "busuk", "reget": "kotor", "reged": "kotor",
    "kemproh": "kotor", "resik": "bersih", "mampet": "mampet", "buntu": "tersumbat",
    "mbleber": "meluap", "luber": "meluap", "kebanjiran": "banjir", "kelelep": "tenggelam",
    "peteng": "gelap", "padhang": "terang", "urup": "menyala", "murup": "menyala", "nyala": "menyala",
    "cagak": "tiang", "bangjo": "lampu lalu lintas", "abang": "merah", "ijo": "hijau",
    "montor": "motor", "sepedah": "sepeda", "bis": "bus", "mbecak": "becak",
    "kewan": "hewan", "asu": "anjing", "ulo": "ular", "tikuse": "tikus",
    "duwek": "uang", "duit": "uang", "rego": "harga", "regane": "harga", "larang": "mahal",
    "lombok": "cabai", "cabe": "cabai", "gas melon": "lpg", "melon": "lpg", "elpiji": "lpg",
    "bocah": "anak", "arek": "anak", "arek arek": "warga", "mbah": "nenek", "sampeyan": "anda",
    "sampean": "anda", "koen": "kamu", "awakmu": "kamu", "aku": "saya", "awakdewe": "kami",
    "nyuwun": "mohon", "tulung": "tolong", "tulungi": "tolong", "ndang": "segera", "gage": "segera",
    "cepet": "cepat", "dibenakno": "diperbaiki", "dibenakne": "diperbaiki", "didandani": "diperbaiki",
    "didandakno": "diperbaiki", "ndandani": "memperbaiki", "dibenerin": "diperbaiki", "benerin": "perbaiki",
    "dibenahi": "diperbaiki", "diresiki": "dibersihkan", "diangkuti": "diangkut", "dijupuk": "diambil",
    "njaluk": "minta", "jaluk": "minta", "ngemis": "mengemis", "mlaku": "berjalan", "mbayar": "bayar",
    "kenek": "kena", "kesetrum": "tersetrum", "wedi": "takut", "mbok": "", "rek": "", "cak": "",
    "cuk": "", "jancuk": "", "dulur": "", "lur": "", "ae": "saja", "tok": "saja", "thok": "saja",
    "e": "", "ne": "", "seh": "", "se": "", "ta": "", "tah": "", "lho": "", "loh": "", "rek rek": "",
    "asat": "kering", "nyangkut": "tersangkut", "kecantol": "tersangkut", "ali": "cincin", "driji": "jari",
    "mudun": "turun", "nduwur": "atas", "dicopot": "dilepas", "kejebak": "terjebak", "kekunci": "terkunci",
    "dienggo": "dipakai", "jare": "katanya", "saben": "setiap", "isuk": "pagi", "bakul": "pedagang",
    "dijaluki": "dimintai", "gawe": "untuk", "karcise": "karcis", "kebak": "penuh", "bengi": "malam",
    "onok": "ada", "ono": "ada", "ndek": "di", "anyar": "baru", "elek": "jelek", "pager": "pagar",
    "tonggo": "tetangga", "mlebu": "masuk", "metu": "keluar", "ngadu": "mengadu", "endi": "mana",
    "deso": "desa", "meteng": "hamil", "mergo": "karena", "arep": "akan", "mateni": "mematikan",
    "diumumno": "diumumkan", "nek": "kalau", "sak": "satu", "kudu": "harus", "sampek": "sampai",
    "item": "hitam", "gatel": "gatal", "telor": "telur", "kyk": "seperti", "kayak": "seperti",
    "malem": "malam", "pake": "pakai", "dipake": "dipakai", "rmh": "rumah", "kerendem": "terendam",
    "kelebon": "kemasukan", "maling": "pencuri", "jukuk": "ambil", "nggowo": "membawa", "gowo": "bawa",
    "bayi": "bayi", "lara": "sakit", "mriyang": "demam", "watuk": "batuk",
    "dokter e": "dokter", "sekolahe": "sekolah", "guru ne": "guru", "bocor e": "bocor", "kabeh": "semua",
    "blas": "sama sekali", "dino": "hari", "wengi": "malam", "awan": "siang", "sore": "sore",
    "pesing": "bau", "banter": "kencang", "alon": "pelan", "kesuwen": "terlalu lama",
    "ngenteni": "menunggu", "nunggu": "menunggu", "antri": "antre", "antrian": "antrean", "ngantri": "antre",
    "nyolong": "mencuri", "dicolong": "dicuri", "ilang": "hilang", "rusak e": "rusak", "jebol": "jebol",
    "mbuak": "buang", "mbuwak": "buang", "buwak": "buang", "uwuh": "sampah", "rongsok": "rongsokan",
    "kali e": "sungai", "kalen": "selokan", "kalene": "selokan", "got e": "got", "plengsengan": "plengsengan",
    "lemahku": "tanahku", "numpuk": "menumpuk", "pisan": "sekali", "banget": "sangat", "bgt": "sangat", "poll": "sangat", "pol": "sangat",
    # chat abbreviations that matter
    "tlg": "tolong", "tolongin": "tolong", "mhn": "mohon", "min": "admin", "mimin": "admin",
    "udh": "sudah", "udah": "sudah", "sdh": "sudah", "dah": "sudah", "blm": "belum", "blum": "belum",
    "jln": "jalan", "jl": "jalan", "jalanan": "jalan", "lmp": "lampu", "lampunya": "lampu",
    "sy": "saya", "sya": "saya", "yg": "yang", "dg": "dengan", "dgn": "dengan", "utk": "untuk",
    "krn": "karena", "karna": "karena", "d": "di", "dr": "dari", "dri": "dari", "kl": "kalau",
    "klo": "kalau", "kalo": "kalau", "tp": "tapi", "tpi": "tapi", "jg": "juga", "aja": "saja",
    "sm": "sama", "tdk": "tidak", "gmn": "bagaimana", "gimana": "bagaimana", "skrg": "sekarang",
    "skrng": "sekarang", "hr": "hari", "mgg": "minggu", "bln": "bulan", "thn": "tahun",
    "kec": "kecamatan", "kel": "kelurahan", "kab": "kabupaten", "prov": "provinsi",
    "pemkot": "pemerintah kota", "pemkab": "pemerintah kabupaten", "pemprov": "pemerintah provinsi",
    "sekolahan": "sekolah", "puskesmasnya": "puskesmas", "ktpnya": "ktp", "kknya": "kk",
    "ijin": "izin", "perijinan": "perizinan", "ktp-el": "ktp el", "ektp": "e ktp",
    "trafficlight": "traffic light", "traffic": "traffic", "lampu merah": "lampu merah",
    "gorong2": "gorong gorong", "sampahe": "sampah", "kali": "kali",
    "makasih": "terima kasih", "terimakasih": "terima kasih", "trimakasih": "terima kasih", "makasi": "terima kasih", "mksh": "terima kasih", "thx": "terima kasih",
    "thanks": "terima kasih", "tq": "terima kasih", "trims": "terima kasih", "suwun": "terima kasih",
    "matur": "terima", "nuwun": "kasih", "ass": "assalamualaikum", "assalamualaikum": "assalamualaikum",
    "pagi2": "pagi pagi", "wkwk": "", "wkwkwk": "", "hehe": "", "haha": "", "hihi": "",
}

# Emoji / symbols that carry meaning for routing; every other emoji is removed.
_EMOJI_WORDS: dict[str, str] = {
    "🔥": " api ", "🧯": " pemadam ", "🚒": " pemadam kebakaran ", "💧": " air ", "🚰": " air ",
    "🌊": " banjir ", "☔": " hujan ", "🌧": " hujan ", "⛈": " hujan ", "🌪": " puting beliung ",
    "🗑": " sampah ", "🚮": " sampah ", "🚦": " lampu lalu lintas ", "🚥": " lampu lalu lintas ",
    "🚧": " perbaikan jalan ", "🛣": " jalan ", "💡": " lampu ", "🐍": " ular ", "🐝": " tawon ",
    "🐕": " anjing ", "🐶": " anjing ", "🐈": " kucing ", "🏥": " rumah sakit ", "💊": " obat ",
    "🏫": " sekolah ", "🚌": " bus ", "🚍": " bus ", "🅿": " parkir ", "🌳": " pohon ", "🌲": " pohon ",
    "🦟": " nyamuk ", "🤮": " bau ", "🤢": " bau ", "🙏": " mohon ", "👍": " oke ", "🙂": " ", "😊": " ",
}

# Routing words that a generic stopword list would drop.
_KEEP = {
    "air", "api", "jalan", "lampu", "mati", "lalu", "lintas", "umum", "baru", "rusak", "tidak", "belum",
    "tanpa", "keluar", "masuk", "kerja", "bekerja", "tanah", "rumah", "sakit", "anak", "ibu", "bapak",
    "sekolah", "pasar", "harga", "naik", "besar", "kecil", "bawah", "atas", "dalam", "luar", "pohon",
    "hari", "tahun", "bulan", "tinggi", "tiba", "bantuan", "banjir", "kasih", "terima", "selamat",
    "pagi", "siang", "sore", "malam", "halo", "mohon", "tolong", "izin", "lama", "lewat", "waktu",
}

# Connectors inside vocabulary phrases ("berjualan di trotoar") that are not routing words themselves.
_FUNCTION_WORDS = {"di", "ke", "dan", "yang", "dari", "untuk", "dengan", "pada", "atau", "oleh", "saat", "akan",
                   "ada", "sudah", "dalam", "hari", "bisa", "dapat", "juga", "ini", "itu", "se"}

# "SIP" is slang for "ok" ("sip min") but also the Surat Izin Praktik of a health worker: read as the
# licence when the text names a health profession or facility, or a permit step around the word.
_HEALTH_PERMIT = re.compile(r"\b(?:praktik|praktek|dokter|drg|bidan|perawat|nakes|apoteker|terapis|str|tenaga kesehatan|"
                            r"klinik|apotek|fisioterapis?|psikolog|ahli gizi|sanitarian|analis|radiografer)\b|"
                            r"\b(?:permohonan|pengajuan|penerbitan|perpanjangan|pembuatan|pengurusan|mengurus|"
                            r"mengajukan|ngurus|urus|rekomendasi|terbit|terbitnya|berkas|syarat|persyaratan)\s+(?:\w+\s+)?sip\b|"
                            r"\bsip\s+(?:belum|blm|ditolak|kedaluwarsa|(?:sudah|udah|udh)\s+(?:habis|mati))\b")

_URL = re.compile(r"(https?://\S+|www\.\S+|\b[\w-]+\.(?:com|id|net|org|co\.id|go\.id|ly|me|io)(?:/\S*)?)", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_WORD = re.compile(r"[a-z0-9]+")
_REPEAT = re.compile(r"([a-z])\1{2,}")
_REDUP = re.compile(r"\b([a-z]{3,})2\b")
_POLITE_IZIN = re.compile(r"\b(?:mohon|minta|permisi|ijin|izin)\s+(?:izin|ijin)\b|\b(?:izin|ijin)\s+"
                          r"(?:bertanya|tanya|melapor|lapor|menyampaikan|menginformasikan|share|info|min|admin)\b")


# ---------------------------------------------------------------- word tables


def _read_tsv(path: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    if not path.exists():
        return table
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        informal, _, formal = line.partition("\t")
        informal = informal.strip().lower()
        if informal and informal != "informal":
            table[informal] = formal.strip().lower()
    return table


@lru_cache(maxsize=1)
def slang_table() -> dict[str, str]:
    """informal -> formal ('' = drop). The project's slang.tsv wins over the built-in table."""
    table = dict(_BUILTIN_SLANG)
    table.update(_read_tsv(DATA / "slang.tsv"))
    # Routing words are never rewritten into something else by a generic slang table.
    for word in ("pju", "tps", "kk", "nik", "pkl", "pkh", "pdam", "rt", "rw", "gang", "lyn", "bemo", "lpg"):
        if table.get(word, word) not in (word, "gang", "lpg"):
            table.pop(word, None)
    return table


@lru_cache(maxsize=1)
def routing_words() -> frozenset[str]:
    """Every word of the OPD vocabulary: never dropped as a stopword."""
    words = set(_KEEP)
    terms = DATA / "opd_terms.yaml"
    if terms.exists():
        import yaml

        for code, entries in (yaml.safe_load(terms.read_text(encoding="utf-8")) or {}).items():
            if code == "NONE":
                continue
            for entry in entries or []:
                words.update(_WORD.findall(str(entry).lower()))
    return frozenset(words - _FUNCTION_WORDS)


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    path = DATA / "stopwords.txt"
    words: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            w = line.split("#", 1)[0].strip().lower()
            if w:
                words.add(w)
    else:
        words.update("yang di ke dari dan atau ini itu dengan untuk pada adalah akan sudah saya kami kita "
                     "anda dia mereka nya juga karena jadi agar supaya bahwa oleh sebagai dalam saja lagi "
                     "ada bisa harus sangat sekali telah masih pun lah kah tersebut kepada bagi".split())
    words.update(("admin", "kak", "pak", "bu", "mas", "mbak", "om", "sih", "dong", "deh", "kok", "nih", "ya",
                  "yg", "kan", "tuh", "gitu", "gini", "nya"))
    return frozenset(words - routing_words())


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Known words: Sastrawi's root words, the OPD vocabulary and the slang tables' formal side."""
    words: set[str] = set(routing_words())
    try:
        from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

        words.update(StemmerFactory().get_words())
    except Exception:  # pragma: no cover - PySastrawi is a dependency
        pass
    for formal in slang_table().values():
        words.update(formal.split())
    words.update(slang_table())
    words.update(("maaf", "saat", "tunggu", "jalan", "sudah", "belum", "tolong", "mohon", "banget"))
    return frozenset(w for w in words if " " not in w)


# ---------------------------------------------------------------- normalise


def _strip_emoji(text: str) -> str:
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch in _EMOJI_WORDS:
            out.append(_EMOJI_WORDS[ch])
            continue
        cat = unicodedata.category(ch)
        if cat in ("So", "Sk", "Cs", "Co", "Cn") or ch in "\ufe0f\u200d":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=4096)
def _segment(word: str) -> str:
    """Split a run-together hashtag into known words ("jalanrusak" -> "jalan rusak")."""
    vocab = vocabulary()
    n = len(word)
    if n < 6 or word in vocab:
        return word
    # best[i]: (cost, words) for word[:i]; known words cost 1, unknown characters cost 3 each.
    best: list[tuple[float, list[str]]] = [(0.0, [])] + [(float("inf"), [])] * n
    for i in range(1, n + 1):
        for j in range(max(0, i - 20), i):
            piece = word[j:i]
            if piece in vocab and (len(piece) > 1 or piece.isdigit()):
                cost = best[j][0] + 1
            elif i - j == 1:
                cost = best[j][0] + 3
            else:
                continue
            if cost < best[i][0]:
                best[i] = (cost, best[j][1] + [piece])
    cost, parts = best[n]
    if cost > len(parts) + 2:  # too much unknown material: keep as it was
        return word
    return " ".join(parts)


def _hashtag(m: re.Match[str]) -> str:
    tag = m.group(1)
    if any(c.isupper() for c in tag[1:]) and not tag.isupper():
        return " " + _CAMEL.sub(" ", tag) + " "
    return " " + " ".join(_segment(p) for p in _CAMEL.sub(" ", tag).lower().split()) + " "


@lru_cache(maxsize=65536)
def _squash(word: str) -> str:
    """'tolonggg' -> 'tolong', 'maaaaf' -> 'maaf': runs of 3+ letters to two or one, whichever is a word."""
    if not _REPEAT.search(word):
        return word
    vocab = vocabulary()
    double = _REPEAT.sub(r"\1\1", word)
    single = _REPEAT.sub(r"\1", word)
    if single in vocab or single in slang_table():
        return single
    if double in vocab or double in slang_table():
        return double
    return single


@lru_cache(maxsize=65536)
def _word(word: str) -> str:
    """One lower-case word to its formal form (may be several words or '')."""
    word = _squash(word)
    table = slang_table()
    if word in table:
        return table[word]
    if word.isdigit() or len(word) < 4:
        return word
    vocab = vocabulary()
    if word in vocab:
        return word
    # Suroboyoan possessive: "dalane" -> "dalan" -> "jalan", "lampune" -> "lampu", "sampahe" -> "sampah"
    for suffix in ("ne", "e", "nya"):
        if word.endswith(suffix):
            base = word[: -len(suffix)]
            if len(base) >= 3 and (base in table or base in vocab):
                return table.get(base, base)
    return _typo(word)


@lru_cache(maxsize=1)
def _typo_index() -> dict[str, frozenset[str]]:
    """Every routing word of five letters or more under each of its one-letter deletions (and itself)."""
    index: dict[str, set[str]] = {}
    for w in routing_words():
        if len(w) >= 5 and w.isalpha():
            for v in {w} | {w[:i] + w[i + 1:] for i in range(len(w))}:
                index.setdefault(v, set()).add(w)
    return {k: frozenset(v) for k, v in index.items()}


def _one_slip(a: str, b: str) -> bool:
    """True when a and b differ by one dropped, doubled or swapped (adjacent) letter: the slips of a
    thumb. A replaced letter is left alone: "demak", "baruk", "margo" are names, not typos."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1:]
    return i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]


@lru_cache(maxsize=1)
def _place_words() -> frozenset[str]:
    """Words of the gazetteer's place names: never "corrected" ("Krampung" is not "kampung")."""
    path = DATA / "gazetteer.json"
    return frozenset(_WORD.findall(path.read_text(encoding="utf-8").lower())) if path.exists() else frozenset()


def _typo(word: str) -> str:
    """A misspelt routing word ("sapmah", "pemadm", "jembtan") to the one word it is a single slip
    away from; anything else (names, places, words with a known stem) stays as written."""
    if len(word) < 5 or not word.isalpha() or word in _place_words() or stem(word) in vocabulary():
        return word
    index = _typo_index()
    found = set(index.get(word, ()))
    for i in range(len(word)):
        found.update(index.get(word[:i] + word[i + 1:], ()))
    found = {w for w in found if _one_slip(word, w) and w[0] == word[0]}
    return found.pop() if len(found) == 1 else word


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Plain lower-case words for routing (see the module docstring). Cached: the classifier,
    deduplication and the place finder each normalise the same message."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _HASHTAG.sub(_hashtag, text)
    text = _strip_emoji(text).lower()
    text = _REDUP.sub(r"\1 \1", text)
    text = _POLITE_IZIN.sub(" ", text)
    if "sip" in text and _HEALTH_PERMIT.search(text):  # "SIP bidan": a practice licence, not "ok"
        text = re.sub(r"\bsip\b", " surat izin praktik ", text)
    out: list[str] = []
    table = slang_table()
    words = _WORD.findall(text)
    i = 0
    while i < len(words):
        w = words[i]
        if i + 1 < len(words):  # two-word slang entries ("gas melon", "wis suwe")
            pair = f"{w} {words[i + 1]}"
            if pair in table:
                if table[pair]:
                    out.append(table[pair])
                i += 2
                continue
        formal = _word(w)
        if formal:
            out.append(formal)
        i += 1
    return " ".join(out)


# ---------------------------------------------------------------- tokens

# Words whose Sastrawi stem would merge them with something else ("kelurahan" -> "lurah",
# the area vs. the official) or mangle them.
_STEM_EXCEPTIONS = {
    "kelurahan": "kelurahan", "kecamatan": "kecamatan", "perumahan": "perumahan", "pertanahan": "pertanahan",
    "kependudukan": "kependudukan", "peternakan": "ternak", "peternak": "ternak", "pemakaman": "makam",
    "perizinan": "izin", "pengangguran": "pengangguran", "pedagang": "dagang", "penerangan": "penerangan",
    "pendidikan": "pendidikan", "kesehatan": "kesehatan", "pelayanan": "layan", "puskesmas": "puskesmas",
    "rusunawa": "rusunawa", "bansos": "bansos", "perhubungan": "perhubungan", "pajak": "pajak",
    "lalu": "lalu", "lintas": "lintas", "pemadam": "pemadam", "kebakaran": "kebakaran", "terbakar": "bakar",
    "sampah": "sampah", "minuman": "minuman", "pertanian": "tani", "perikanan": "ikan", "kerja": "kerja",
    "pekerja": "kerja", "permohonan": "permohonan", "pemohon": "permohonan", "pekerjaan": "pekerjaan", "tenaga": "tenaga", "kendaraan": "kendara",
}


@lru_cache(maxsize=1)
def _stemmer():
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return StemmerFactory().create_stemmer()


_STEM_TABLE: dict[str, str] = {}  # precomputed stems (shipped inside the model): skips Sastrawi


def preload_stems(table: dict[str, str]) -> None:
    """Add precomputed word -> stem pairs (the model carries those of its training vocabulary)."""
    _STEM_TABLE.update(table)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    if word in _STEM_EXCEPTIONS:
        return _STEM_EXCEPTIONS[word]
    hit = _STEM_TABLE.get(word)
    if hit is not None:
        return hit
    if len(word) < 4 or not word.isalpha():
        return word
    return _stemmer().stem(word) or word


def tokens(text: str, normalised: bool = False) -> list[str]:
    """Stemmed routing tokens of `text` (pass normalised=True if it went through normalise())."""
    return list(_tokens(text if normalised else normalise(text)))


@lru_cache(maxsize=4096)
def _tokens(norm: str) -> tuple[str, ...]:
    """Cached like normalise(): the classifier and deduplication tokenise the same message."""
    stops = stopwords()
    out = []
    for w in norm.split():
        if w in stops or w.isdigit():
            continue
        s = stem(w)
        if s and s not in stops:
            out.append(s)
    return tuple(out)
