"""A synthetic, time-ordered stream of Surabaya-style reports with a ground-truth `case` per line.

Written for this project (no text copied from any dataset): informal Indonesian and Suroboyoan,
several channels, and everything deduplication must get right: webhook re-deliveries, a worried
citizen repeating themself, many reporters paraphrasing one problem on different channels, and
hard negatives (another problem at the same street, the same wording at another place, the
same words for a problem of another OPD, the same problem again after the case window).

`python -m tests.dedup_stream OUT.jsonl [--seed N] [--cases N]` writes one for `aduan eval dedup`.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

# Streets: how people write them (full, abbreviated, Suroboyoan).
STREETS = {
    "ahmad yani": ["Jalan Ahmad Yani", "jl. Ahmad Yani", "jln ahmad yani", "Jl A Yani", "dalan Ahmad Yani"],
    "kertajaya": ["Jalan Kertajaya", "jl. kertajaya", "jln Kertajaya Indah", "kertajaya"],
    "rungkut madya": ["Jalan Rungkut Madya", "jl rungkut madya", "Rungkut Madya", "jln. Rungkut Madya"],
    "raya darmo": ["Jalan Raya Darmo", "jl. raya darmo", "Darmo", "jln Darmo"],
    "diponegoro": ["Jalan Diponegoro", "jl diponegoro", "Jl. Dipenogoro", "diponegoro"],
    "mayjen sungkono": ["Jalan Mayjen Sungkono", "jl. mayjen sungkono", "Mayjen Sungkono", "jln sungkono"],
    "kenjeran": ["Jalan Kenjeran", "jl kenjeran", "Jl. Raya Kenjeran", "kenjeran"],
    "ngagel jaya": ["Jalan Ngagel Jaya", "jl. ngagel jaya", "Ngagel Jaya Selatan", "jln ngagel"],
    "jemursari": ["Jalan Jemursari", "jl. jemursari", "Jemursari", "jln raya jemursari"],
    "manyar kertoarjo": ["Jalan Manyar Kertoarjo", "jl manyar kertoarjo", "Manyar", "jln. manyar"],
    "dukuh kupang": ["Jalan Dukuh Kupang", "jl dukuh kupang", "Dukuh Kupang Barat", "dk kupang"],
    "tambak wedi": ["Jalan Tambak Wedi", "jl tambak wedi", "Tambak Wedi", "jln tambakwedi"],
    "banyu urip": ["Jalan Banyu Urip", "jl banyu urip", "Banyu Urip", "jln. banyuurip"],
    "klampis jaya": ["Jalan Klampis Jaya", "jl klampis jaya", "Klampis", "jln klampis jaya"],
    "wonorejo": ["Jalan Wonorejo", "jl raya wonorejo", "Wonorejo", "jln wonorejo"],
    "gayungsari": ["Jalan Gayungsari", "jl gayungsari barat", "Gayungsari", "jln gayung sari"],
    "bratang": ["Jalan Bratang Binangun", "jl bratang", "Bratang", "jln bratang binangun"],
    "simokerto": ["Jalan Simokerto", "jl simokerto", "Simokerto", "jln simokerto"],
}
LANDMARKS = ["depan RSI", "dekat pasar", "depan SDN", "deket masjid", "sebelah indomaret", "depan balai RW",
             "perempatan", "dekat jembatan", "depan kantor kelurahan", "samping musala"]
GANGS = ["gg 3", "gang 5", "gg. 7", "gang buntu", "gg 12"]
RTS = ["RT 02 RW 05", "rt 3 rw 1", "RT 07/RW 03", "rt 04 rw 08"]

# Problems: OPD and paraphrases; {p} is the place as the reporter writes it.
PROBLEMS: dict[str, tuple[str, list[str]]] = {
    "pothole": ("DSDABM", [
        "Jalan berlubang besar di {p}, sudah banyak pengendara motor yang jatuh",
        "min tolong {p} aspalnya bolong2 gede, bahaya kalau malam",
        "dalane rusak parah nang {p}, lubange jero pol rek",
        "lubang di {p} makin lebar, kemarin ada yg kecelakaan. mohon segera ditambal",
        "aspal {p} ambles dan berlubang, tolong diperbaiki",
        "ada jalan bolong di {p} tepat di tengah, banyak motor nyungsep",
    ]),
    "streetlight": ("DSDABM", [
        "Lampu PJU di {p} mati sudah 3 hari, gelap sekali kalau malam",
        "lampu jalan {p} padam semua min, rawan begal",
        "PJU nang {p} mati, peteng ndedet rek",
        "tolong lampu penerangan jalan di {p} mati sejak minggu lalu",
        "min lampu jalan sepanjang {p} gak nyala, gelap gulita",
    ]),
    "flood": ("DSDABM", [
        "{p} banjir setinggi lutut, motor pada mogok",
        "banjir di {p} min, air got meluap sampai masuk rumah",
        "genangan air di {p} gak surut2 sejak hujan tadi, saluran mampet",
        "{p} kebanjiran rek, banyune sak dengkul",
        "tolong {p} tergenang banjir, mobil gak bisa lewat, gorong2 tersumbat",
        "hujan sebentar aja {p} langsung banjir, drainasenya buntu",
    ]),
    "trafficlight": ("DISHUB", [
        "Lampu lalu lintas di {p} mati, kendaraan semrawut",
        "traffic light perempatan {p} gak nyala min, macet parah",
        "bangjo nang {p} mati rek, semrawut kabeh",
        "lampu merah di {p} rusak, tolong petugas dishub diterjunkan",
    ]),
    "parking": ("DISHUB", [
        "parkir liar di {p} makan badan jalan, bikin macet",
        "jukir liar di {p} narik tarif 5000, padahal parkir resmi 2000",
        "banyak mobil parkir sembarangan di bahu jalan {p}, tolong ditertibkan",
    ]),
    "garbage": ("DLH", [
        "Sampah menumpuk di {p} sudah seminggu tidak diangkut, baunya menyengat",
        "min sampah di TPS {p} numpuk sampai ke jalan, bau busuk",
        "sampah gak diangkut2 di {p}, lalat banyak sekali",
        "tumpukan sampah di {p} makin tinggi, truk sampah gak dateng",
        "sampahe nang {p} mambu rek, wis suwe gak diangkuti",
    ]),
    "tree": ("DLH", [
        "Pohon tumbang di {p} menutup jalan, tolong segera dievakuasi",
        "ada pohon besar roboh di {p}, kabel listrik ikut ketarik",
        "uwit ambruk nang {p}, dalan ketutup kabeh",
        "pohon tumbang melintang di {p}, kendaraan gak bisa lewat",
    ]),
    "water": ("PDAM", [
        "Air PDAM di {p} mati sejak kemarin, tolong dicek",
        "air PDAM gak keluar sama sekali di {p} min, sudah 2 hari",
        "banyu PDAM nang {p} mati total rek",
        "air ledeng di {p} tidak mengalir dari pagi, warga kesulitan",
    ]),
    "pipe": ("PDAM", [
        "pipa PDAM bocor di {p}, air muncrat ke jalan",
        "ada pipa air pecah di {p}, airnya terbuang sia2",
        "kebocoran pipa PDAM di {p} sudah 3 hari belum ditangani",
    ]),
    "vendors": ("SATPOLPP", [
        "PKL jualan di trotoar {p}, pejalan kaki terpaksa lewat jalan raya",
        "pedagang kaki lima memenuhi trotoar {p}, tolong ditertibkan satpol pp",
        "trotoar {p} penuh lapak PKL min, gak bisa buat jalan kaki",
    ]),
    "drain": ("DSDABM", [
        "got di {p} mampet, air comberan meluber ke jalan",
        "saluran air {p} tersumbat sampah, bau dan meluap",
        "gorong2 di {p} buntu, tolong dikeruk",
    ]),
}
# Same words, another OPD: street light (DSDABM) vs traffic light (DISHUB) at one crossing, etc.
CONFUSABLE = [("streetlight", "trafficlight"), ("water", "pipe"), ("pothole", "streetlight"),
              ("garbage", "drain"), ("tree", "streetlight"), ("vendors", "parking")]
FAMILY = {"drain": "flood"}  # a blocked drain and a flood at one street are one problem
NON_COMPLAINTS = ["terima kasih min sudah ditindaklanjuti", "selamat pagi admin", "halo min",
                  "mantap pelayanannya, makasih pak", "assalamualaikum", "ok siap terima kasih"]
CHANNELS = ["telegram", "sms", "whatsapp", "twitter", "instagram"]
OPENERS = ["", "", "", "min ", "tolong ", "lapor min, ", "pak, ", "assalamualaikum, ", "@sapawargasby "]
CLOSERS = ["", "", "", " 🙏", " mohon segera ditindaklanjuti", " #Surabaya", " makasih", "!!", " tolong cepet"]


def _place(rng: random.Random, street: str, detail: str | None) -> str:
    name = rng.choice(STREETS[street])
    return f"{name} {detail}" if detail and rng.random() < 0.6 else name


def _noisy(rng: random.Random, text: str) -> str:
    text = rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    if rng.random() < 0.25:
        words = text.split()
        i = rng.randrange(len(words))
        if len(words[i]) > 4:
            words[i] = words[i][:-1]  # a typo
        text = " ".join(words)
    if rng.random() < 0.2:
        text = text.lower()
    return text


class Stream:
    def __init__(self, seed: int, start: datetime):
        self.rng, self.start, self.lines, self.n, self.case_n = random.Random(seed), start, [], 0, 0
        self.open: dict[tuple[str, str], list[datetime]] = {}  # (problem, street) -> when a case began

    def new_case(self) -> str:
        self.case_n += 1
        return f"c{self.case_n:05d}"

    def emit(self, case: str, opd: str | None, text: str, at: datetime, channel: str, sender: str,
             loc: tuple[float, float] | None = None) -> dict[str, Any]:
        self.n += 1
        line = {"channel": channel, "external_id": f"{channel}-{self.n}", "sender": sender,
                "sender_display": sender, "text": text, "received_at": at.isoformat(),
                "public": channel in ("twitter", "instagram"), "case": case, "opd": opd}
        if loc:
            line["location"] = {"lat": loc[0], "lon": loc[1]}
        self.lines.append(line)
        return line

    def sender(self, channel: str) -> str:
        r = self.rng
        if channel in ("sms", "whatsapp"):
            return f"+628{r.randrange(10**9, 10**10)}"
        if channel == "telegram":
            return str(r.randrange(10**8, 10**9))
        return f"warga{r.randrange(10**6)}"

    def case(self, problem: str, street: str, at: datetime, reporters: int, detail: str | None = None,
             geo: tuple[float, float] | None = None) -> str | None:
        """One real problem reported by `reporters` people over the following hours (None: that problem
        is already open at that street, so it would not be a distinct case)."""
        began = self.open.setdefault((FAMILY.get(problem, problem), street), [])
        if any(abs((at - b).total_seconds()) < 17 * 86400 for b in began):
            return None
        began.append(at)
        r, case = self.rng, self.new_case()
        opd, texts = PROBLEMS[problem]
        for i in range(reporters):
            when = at + timedelta(minutes=r.expovariate(1 / 240) if i else 0)
            ch = r.choice(CHANNELS)
            who = self.sender(ch)
            text = _noisy(r, r.choice(texts).format(p=_place(r, street, detail)))
            loc = (geo[0] + r.uniform(-0.0005, 0.0005), geo[1] + r.uniform(-0.0005, 0.0005)) if geo and r.random() < 0.5 else None
            line = self.emit(case, opd, text, when, ch, who, loc)
            if r.random() < 0.12:  # the provider re-delivers the webhook
                self.lines.append(dict(line))
            if r.random() < 0.15:  # a worried citizen sends it again, as is or reworded
                again = text if r.random() < 0.5 else _noisy(r, r.choice(texts).format(p=_place(r, street, detail)))
                self.emit(case, opd, again, when + timedelta(minutes=r.uniform(5, 600)), ch, who, loc)
        return case

    def chatter(self, at: datetime) -> None:
        ch = self.rng.choice(CHANNELS)
        self.emit(self.new_case(), None, self.rng.choice(NON_COMPLAINTS), at, ch, self.sender(ch))


def generate(seed: int = 7, cases: int = 150, start: datetime | None = None) -> list[dict[str, Any]]:
    """The stream, sorted by received_at; each line is an InboundMessage plus `case` and `opd`."""
    start = start or datetime(2026, 10, 1, 1, 0, tzinfo=timezone.utc)
    s = Stream(seed, start)
    r = s.rng
    streets, problems = list(STREETS), list(PROBLEMS)
    for _ in range(cases):
        at = start + timedelta(hours=r.uniform(0, 24 * 28))
        street, problem = r.choice(streets), r.choice(problems)
        kind = r.random()
        size = 1 + int(r.expovariate(1 / 2.5)) if r.random() < 0.85 else r.randint(8, 25)
        detail = r.choice(LANDMARKS + GANGS + RTS + [None, None])
        geo = (-7.25 - r.random() * 0.1, 112.7 + r.random() * 0.1) if r.random() < 0.3 else None
        s.case(problem, street, at, size, detail, geo)
        if kind < 0.15:  # hard negative: another problem at the same street, same day
            other = r.choice([p for p in problems if p != problem])
            s.case(other, street, at + timedelta(hours=r.uniform(0, 12)), 1 + int(r.expovariate(1 / 2)), detail)
        elif kind < 0.30:  # hard negative: the same problem in the same words at another street
            s.case(problem, r.choice([x for x in streets if x != street]), at + timedelta(hours=r.uniform(0, 12)),
                   1 + int(r.expovariate(1 / 2)))
        elif kind < 0.40:  # hard negative: a look-alike problem of another OPD at the same place
            pair = r.choice([p for p in CONFUSABLE if problem in p] or CONFUSABLE)
            other = pair[1] if pair[0] == problem else pair[0]
            s.case(other, street, at + timedelta(hours=r.uniform(0, 12)), 1 + int(r.expovariate(1 / 2)), detail)
        elif kind < 0.45:  # the same problem again, after the case window: a new case
            s.case(problem, street, at + timedelta(days=r.uniform(20, 30)), 1 + int(r.expovariate(1 / 2)), detail)
        if r.random() < 0.3:
            s.chatter(at + timedelta(minutes=r.uniform(0, 300)))
    s.lines.sort(key=lambda ln: ln["received_at"])
    return s.lines


def main(argv: list[str]) -> None:
    out = argv[0]
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 7
    cases = int(argv[argv.index("--cases") + 1]) if "--cases" in argv else 150
    with open(out, "w", encoding="utf-8") as fh:
        for line in generate(seed, cases):
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
