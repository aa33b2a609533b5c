"""`aduan bench dedup`: near-duplicate lookup cost as the history grows, beside brute force.

For each size N it fills the in-process index (the same `MemoryBackend`, bucket names and
`judge` the pipeline uses) with N synthetic complaints spread over many streets, OPDs and
wordings inside one case window, then times lookups of new reports (half of them re-reports of
a stored problem): features + MinHash + bucket reads + judging the best candidates. The
database check of the chosen ticket (one indexed query) is not included. Brute force judges
the same queries against every stored complaint of the OPD; its time and the share of its
matches the index also finds are printed beside. Filler words come from the Purbalingga
complaint texts from the project's seed corpus.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.config import AppConfig

SEED = Path(__file__).parent / "data" / "seed"
SYLLABLES = ["ka", "ran", "sa", "ri", "wo", "no", "kro", "mo", "jo", "yo", "ngan", "tam", "bak", "su", "ko",
             "lo", "me", "nur", "ge", "bang", "re", "jeng", "pa", "kis", "dar", "to", "ba", "tu", "gu", "ling"]
PROBLEMS = [
    ("DSDABM", ["jalan berlubang besar", "aspal ambles dan bolong", "lampu pju mati gelap", "lampu jalan padam",
                "banjir setinggi lutut", "got mampet air meluap", "saluran tersumbat sampah"]),
    ("DISHUB", ["lampu lalu lintas mati", "parkir liar makan badan jalan", "jukir liar tarif mahal"]),
    ("DLH", ["sampah menumpuk tidak diangkut", "pohon tumbang menutup jalan", "sampah dibakar asap"]),
    ("PDAM", ["air pdam mati tidak mengalir", "pipa pdam bocor air muncrat", "air pdam keruh bau"]),
    ("SATPOLPP", ["pkl berjualan di trotoar", "reklame liar dipasang di tiang"]),
]
BUILTIN_FILLER = ["sudah berhari hari warga mengeluh", "mohon segera ditindaklanjuti pak", "kasihan anak sekolah",
                  "kalau malam bahaya sekali", "sudah lapor rt tapi belum ada tindakan", "tolong dicek petugas"]


def _filler() -> list[str]:
    """Realistic complaint wording for the synthetic history: the project's own seed corpus."""
    texts = []
    for f in sorted(SEED.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts or BUILTIN_FILLER


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


class World:
    """Streets, wordings and the stored complaints of one run (deterministic per seed)."""

    def __init__(self, cfg: AppConfig, n: int, seed: int = 1):
        from core.lsh import lsh_params

        self.cfg, self.rng = cfg, random.Random(seed)
        self.bands, self.rows = lsh_params(cfg.dedup.lsh_threshold, cfg.dedup.num_perm)
        n_streets = max(500, n // 40)
        names: set[str] = set()
        while len(names) < n_streets:
            names.add("".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(3, 4))))
        self.streets = sorted(names)
        self.filler = _filler()

    def text(self, problem: str, street: str) -> str:
        return f"{problem} di jalan {street} {self.rng.choice(self.filler)}"


def build(world: World, n: int, progress: Any) -> tuple[Any, list[tuple[str, Any, float]], dict[str, Any]]:
    """Fill a fresh MemoryBackend with n complaints; returns it, the stored features and build figures."""
    from dataclasses import replace

    from core.dedup_index import bucket_names, features
    from core.lsh import band_matrix, signature
    from core.dedup_store import MemoryBackend

    cfg, rng = world.cfg, world.rng
    templates: list[tuple[str, Any, np.ndarray]] = []
    for _ in range(min(20_000, max(2_000, n // 20))):  # wordings without the street, computed once
        opd, phrases = rng.choice(PROBLEMS)
        f = features(f"{rng.choice(phrases)} di jalan {rng.choice(world.filler)}")
        templates.append((opd, f, signature(f.words, cfg.dedup.num_perm)))
    street_sigs = {s: signature({s}, cfg.dedup.num_perm) for s in world.streets}
    stored: list[tuple[str, Any, float]] = []
    task = progress.add_task(f"indexing {n:,}", total=n)
    before = _rss_mb()
    t0 = time.perf_counter()
    mem = MemoryBackend()
    now = 1_780_000_000.0
    chunk = 50_000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        picks = [rng.randrange(len(templates)) for _ in range(size)]
        streets = [rng.choice(world.streets) for _ in range(size)]
        # MinHash of a union is the element-wise minimum of the MinHashes: words + street.
        sigs = np.minimum(np.stack([templates[p][2] for p in picks]), np.stack([street_sigs[s] for s in streets]))
        bands = band_matrix(sigs, world.bands, world.rows)
        for j in range(size):
            opd, tf, _ = templates[picks[j]]
            f = replace(tf, words=tf.words | {streets[j]}, place=frozenset({streets[j]}))
            at = now - rng.uniform(0, 13 * 86400)
            doc_id = start + j + 1
            doc = {"m": doc_id, "o": opd, "at": at, "f": f.to_json()}
            mem.add(doc_id, doc, bucket_names(f, opd, None, world.bands, world.rows, False,
                                              band_ids=[int(x) for x in bands[j]]))
            stored.append((opd, f, at))
        progress.advance(task, size)
    build_s = time.perf_counter() - t0
    figures = {"build_seconds": round(build_s, 1), "index_mb": round(_rss_mb() - before, 1),
               "buckets": len(mem.buckets)}
    progress.remove_task(task)
    return mem, stored, figures


def lookup(world: World, mem: Any, text: str, opd: str, now: float) -> list[tuple[float, int]]:
    """What find_match does before its database check: candidates, then judge."""
    from core.dedup import judge
    from core.dedup_index import Features, bucket_names, features
    from core.lsh import signature

    cfg = world.cfg
    f = features(text)
    sig = signature(f.words, cfg.dedup.num_perm)
    found = []
    for doc_id, doc in mem.candidates(bucket_names(f, opd, sig, world.bands, world.rows, True)).items():
        if doc["o"] == opd and 0 <= now - doc["at"] <= cfg.dedup.case_window_days * 86400:
            v = judge(f, Features.from_json(doc["f"]), cfg)
            if v is not None:
                found.append((v[0], doc_id))
    return sorted(found, reverse=True)


def brute(world: World, stored: list[tuple[str, Any, float]], text: str, opd: str, now: float) -> set[int]:
    from core.dedup import judge
    from core.dedup_index import features

    f = features(text)
    window = world.cfg.dedup.case_window_days * 86400
    return {i + 1 for i, (o, g, at) in enumerate(stored)
            if o == opd and 0 <= now - at <= window and judge(f, g, world.cfg) is not None}


def run_size(cfg: AppConfig, n: int, queries: int, progress: Any) -> dict[str, Any]:
    world = World(cfg, n)
    mem, stored, figures = build(world, n, progress)
    rng = random.Random(7)
    now = 1_780_000_000.0
    qs = []
    for k in range(queries):
        if k % 2 == 0:  # a re-report of a stored problem, in other words
            i = rng.randrange(len(stored))
            opd, f, _ = stored[i]
            street = next(iter(f.place))
            phrase = rng.choice(dict(PROBLEMS)[opd])
        else:
            opd, phrases = rng.choice(PROBLEMS)
            street, phrase = rng.choice(world.streets), rng.choice(phrases)
        qs.append((world.text(phrase, street), opd))
    for text, opd in qs[:20]:  # warm caches (stemmer, permutations)
        lookup(world, mem, text, opd, now)
    times, results = [], []
    task = progress.add_task(f"lookups at {n:,}", total=len(qs))
    for text, opd in qs:
        t = time.perf_counter()
        results.append(lookup(world, mem, text, opd, now))
        times.append((time.perf_counter() - t) * 1000)
        progress.advance(task)
    progress.remove_task(task)
    bt, agree, matched = [], 0, 0
    deadline = time.perf_counter() + 20.0
    task = progress.add_task(f"brute force at {n:,}", total=len(qs))
    for (text, opd), res in zip(qs, results):
        t = time.perf_counter()
        truth = brute(world, stored, text, opd, now)
        bt.append((time.perf_counter() - t) * 1000)
        progress.advance(task)
        if truth:
            matched += 1
            agree += bool({d for _, d in res} & truth)
        if len(bt) >= 3 and time.perf_counter() > deadline:
            break
    progress.remove_task(task)
    q = np.percentile(times, [50, 99])
    return {"stored": n, **figures, "lookup_p50_ms": round(float(q[0]), 3), "lookup_p99_ms": round(float(q[1]), 3),
            "brute_p50_ms": round(statistics.median(bt), 1), "brute_queries": len(bt),
            "index_found_brute_matches": round(agree / matched, 3) if matched else None}


def cli_bench(cfg: AppConfig, sizes: list[int], queries: int, as_json: bool) -> int:
    from rich.console import Console
    from rich.progress import Progress

    rows = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        for n in sizes:
            rows.append(run_size(cfg, n, queries, progress))
            import gc

            gc.collect()
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return 0
    from rich.table import Table

    table = Table(title="Near-duplicate lookup (in-process index; database check excluded)")
    for col in ("stored", "build s", "index MB", "p50 ms", "p99 ms", "brute p50 ms", "speed-up", "finds brute's"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        found = r["index_found_brute_matches"]
        table.add_row(f"{r['stored']:,}", f"{r['build_seconds']}", f"{r['index_mb']}", f"{r['lookup_p50_ms']:.2f}",
                      f"{r['lookup_p99_ms']:.2f}", f"{r['brute_p50_ms']:.1f}",
                      f"{r['brute_p50_ms'] / max(r['lookup_p50_ms'], 1e-3):,.0f}x", "-" if found is None else f"{found:.0%}")
    Console(width=120).print(table)
    print("p50 target: <= 5 ms at 1,000,000 stored complaints", file=sys.stderr)
    return 0
