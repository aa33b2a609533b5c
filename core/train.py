"""Training, evaluation and the model store of the OPD router.

- ``train(cfg, extra_examples)``: fits a model on the seed corpus (core/data/seed/*.jsonl), the OPD
  vocabulary (core/data/opd_terms.yaml), the catalogue keywords and the extra (operator-labelled)
  examples; evaluates it and the current model on the same held-back slice; writes it
  atomically as ``$ADUAN_DATA_DIR/models/model-YYYYmmddHHMMSS.joblib`` only when its macro-F1
  is not worse. Running classifiers pick it up (core.classify checks for newer files).
- ``evaluate(classifier, rows)`` / ``format_report(report)``: accuracy, macro-F1, per-OPD
  precision/recall/F1/support, most confused pairs, triage share, non-complaints routed.
- ``cli_classify``, ``cli_eval``, ``cli_train``: the bodies of ``aduan classify``,
  ``aduan eval classify FILE`` and ``aduan train``.
- ``python -m core.train --ship`` rebuilds the shipped model core/data/model/model.joblib from
  the seed corpus only.

The held-back slice is deterministic: a row is held back when a hash of its normalised text
falls in the lowest HOLDOUT_PERCENT (at least one row of every class that has four or more),
and no model (shipped or trained later) is ever fitted on it, so comparisons are fair.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable

import numpy as np

from core.classify import NONE, SHIPPED_MODEL, Classifier, load_model, models_dir
from core.route_features import PhraseMatcher, catalogue_phrases, char_text, featurise, prepare
from core.config import AppConfig, OPDConfig
from core.normalise import normalise

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
SEED_DIR = DATA / "seed"
TERMS_FILE = DATA / "opd_terms.yaml"
HOLDOUT_PERCENT = 15

# The default OPD catalogue of Surabaya (ships in config.yaml; admins edit it there).
DEFAULT_OPDS: list[dict[str, Any]] = [
    {"code": "DSDABM", "name": "Dinas Sumber Daya Air dan Bina Marga",
     "keywords": ["jalan rusak", "jalan berlubang", "aspal", "jembatan", "trotoar", "saluran", "got",
                  "gorong-gorong", "drainase", "genangan", "rumah pompa", "penerangan jalan umum", "pju",
                  "lampu jalan"]},
    {"code": "DISHUB", "name": "Dinas Perhubungan",
     "keywords": ["lampu lalu lintas", "traffic light", "rambu", "marka", "parkir liar", "juru parkir", "jukir",
                  "tarif parkir", "kemacetan", "macet", "angkutan umum", "suroboyo bus", "lyn", "bemo", "halte",
                  "truk"]},
    {"code": "DLH", "name": "Dinas Lingkungan Hidup",
     "keywords": ["sampah", "tps", "truk sampah", "pembakaran sampah", "pencemaran", "limbah", "bau limbah",
                  "taman kota", "pohon tumbang", "perantingan", "ruang terbuka hijau"]},
    {"code": "DINKES", "name": "Dinas Kesehatan",
     "keywords": ["puskesmas", "obat", "dbd", "demam berdarah", "fogging", "jentik", "stunting", "gizi buruk",
                  "imunisasi", "posyandu", "rsud", "layanan kesehatan"]},
    {"code": "DISPENDIK", "name": "Dinas Pendidikan",
     "keywords": ["sekolah", "sd", "smp", "ppdb", "zonasi", "pungutan sekolah", "guru", "seragam", "beasiswa",
                  "bantuan pendidikan", "gedung sekolah"]},
    {"code": "DISPENDUKCAPIL", "name": "Dinas Kependudukan dan Pencatatan Sipil",
     "keywords": ["ktp", "e-ktp", "kk", "kartu keluarga", "akta kelahiran", "akta kematian", "kia",
                  "pindah datang", "nik", "adminduk", "dukcapil"]},
    {"code": "SATPOLPP", "name": "Satuan Polisi Pamong Praja",
     "keywords": ["pkl", "pedagang kaki lima", "bangunan liar", "reklame liar", "spanduk liar", "tempat hiburan",
                  "miras", "minuman keras", "ketertiban umum", "satpol pp"]},
    {"code": "DINSOS", "name": "Dinas Sosial",
     "keywords": ["bansos", "pkh", "bpnt", "warga miskin", "dtks", "mbr", "gelandangan", "pengemis", "odgj",
                  "terlantar", "lansia", "disabilitas"]},
    {"code": "DAMKAR", "name": "Dinas Pemadam Kebakaran dan Penyelamatan",
     "keywords": ["kebakaran", "terbakar", "hidran", "ular", "sarang tawon", "tawon", "cincin tersangkut",
                  "terjebak", "penyelamatan", "damkar"]},
    {"code": "BPBD", "name": "Badan Penanggulangan Bencana Daerah",
     "keywords": ["puting beliung", "angin kencang", "gempa", "tanah longsor", "longsor", "bencana",
                  "pengungsian"]},
    {"code": "PDAM", "name": "PDAM Surya Sembada",
     "keywords": ["pdam", "air mati", "air keruh", "air bau", "pipa bocor", "meter air", "tagihan air"]},
    {"code": "DPRKPP", "name": "Dinas Perumahan Rakyat dan Kawasan Permukiman serta Pertanahan",
     "keywords": ["rusunawa", "rusun", "rumah tidak layak huni", "rehab rumah", "pbg", "imb", "fasum",
                  "fasos", "makam", "pemakaman"]},
    {"code": "BAPENDA", "name": "Badan Pendapatan Daerah",
     "keywords": ["pbb", "sppt", "njop", "bphtb", "pajak", "pajak restoran", "pajak reklame", "denda pajak"]},
    {"code": "DISKOMINFO", "name": "Dinas Komunikasi dan Informatika",
     "keywords": ["aplikasi", "website", "wifi", "wifi publik", "cctv", "media center", "internet"]},
    {"code": "DKPP", "name": "Dinas Ketahanan Pangan dan Pertanian",
     "keywords": ["harga beras", "harga cabai", "stok pangan", "pasar murah", "kesehatan hewan", "anjing liar",
                  "kucing liar", "rabies", "rumah potong hewan", "pertanian"]},
    {"code": "DINKOPDAG", "name": "Dinas Koperasi, Usaha Kecil dan Menengah dan Perdagangan",
     "keywords": ["pasar tradisional", "kios pasar", "umkm", "koperasi", "timbangan", "lpg", "gas 3 kg",
                  "minyak goreng", "minimarket"]},
    {"code": "DPMPTSP", "name": "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu",
     "keywords": ["perizinan", "izin usaha", "nib", "izin reklame", "oss", "investasi"]},
    {"code": "DISPERINAKER", "name": "Dinas Perindustrian dan Tenaga Kerja",
     "keywords": ["lowongan kerja", "pelatihan kerja", "upah", "gaji", "thr", "phk", "bpjs ketenagakerjaan",
                  "industri kecil"]},
    {"code": "KEWILAYAHAN", "name": "Kecamatan dan Kelurahan",
     "keywords": ["kelurahan", "kecamatan", "lurah", "camat", "surat pengantar", "surat keterangan", "rt", "rw",
                  "balai rw"]},
]

# Hyper-parameters of the shipped recipe (measured; see the notes in the closing report).
DEFAULT_PARAMS: dict[str, Any] = {
    "C": 10.0,
    "word_ngram": (1, 2),
    "word_min_df": 1,
    "char": True,
    "char_ngram": (2, 5),
    "char_min_df": 2,
    "char_limit": 150,  # character n-grams of the opening only (title + first sentence of a long report)
    "weights": {"word": 1.3, "char": 1.0, "lex": 0.15, "cat": 0.05, "title": 0.5},
    "lexicon_examples": True,
    "lexicon_sample_weight": 1.0,
    "max_iter": 3000,
    "max_rows": 0,  # >0: use at most this many seed rows per class (fast tests)
    "polite_copies": 0.3,  # share of complaints also trained with a greeting before and thanks after
    "lexicon_generic": True,  # leave GENERIC_TERMS out of the vocabulary features
}

# Single words of the OPD vocabulary that real complaints use for anything: an address ("Perumahan
# Griya Asri", "di tengah permukiman"), a means ("lewat aplikasi", "NIK saya"), a bystander ("pasien",
# "karyawan"). As vocabulary features they pulled regency complaints to the wrong OPD; the word and
# character features still learn them from the corpus, in context.
GENERIC_TERMS = frozenset(
    "perumahan permukiman aplikasi penduduk nik kis sawah karyawan tower server internet website".split())

_OPENERS = ["Assalamualaikum wr wb.", "Selamat pagi admin,", "Selamat siang Bapak/Ibu,", "Selamat malam min,",
            "Halo min, mohon maaf mengganggu.", "Permisi, mohon maaf sebelumnya.", "Yth. Bapak/Ibu, salam sejahtera.",
            "Selamat sore, semoga sehat selalu.", "Halo kak,", "Mohon maaf min,", "Sugeng enjing,", "Pagi min,"]
_CLOSERS = ["Terima kasih.", "Terima kasih atas perhatiannya.", "Mohon bantuannya, terima kasih banyak.",
            "Wassalamualaikum.", "Matur nuwun.", "Makasih min 🙏", "Atas perhatian dan kerja samanya kami ucapkan "
            "terima kasih.", "Semoga segera ditindaklanjuti. Terima kasih.", "Salam.", "Mohon maaf jika kurang berkenan."]


def default_config(**overrides: Any) -> AppConfig:
    """An AppConfig with the default OPD catalogue (for scripts and tests)."""
    return AppConfig(opds=[OPDConfig(**o) for o in DEFAULT_OPDS], **overrides)


# ---------------------------------------------------------------- examples


def load_seed(seed_dir: Path = SEED_DIR) -> list[dict[str, Any]]:
    """Rows {"text","opd","channel"} of the seed corpus; opd None (non-complaint) -> NONE."""
    rows = []
    for path in sorted(Path(seed_dir).glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                text = str(obj["text"]).strip()
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: not a seed example, skipped", path.name, n)
                continue
            if text:
                rows.append({"text": text, "opd": obj.get("opd") or NONE, "channel": obj.get("channel")})
    return rows


def load_terms(path: Path = TERMS_FILE) -> dict[str, list[str]]:
    import yaml

    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): [str(e) for e in (v or [])] for k, v in raw.items()}


def labelled_examples(session: Any) -> list[tuple[str, str | None]]:
    """(text, opd) pairs operators confirmed or corrected; [] while the `label` table is absent."""
    from sqlalchemy import inspect, text

    try:
        bind = session.get_bind()
        if not inspect(bind).has_table("label"):
            return []
        rows = session.execute(text("SELECT text, opd FROM label")).all()
    except Exception as exc:  # never let a schema difference stop training
        log.warning("cannot read labelled examples: %s", exc)
        try:
            session.rollback()
        except Exception:
            pass
        return []
    return [(str(t), o or None) for t, o in rows if t]


def _as_rows(examples: Iterable[Any] | None) -> list[dict[str, Any]]:
    rows = []
    for ex in examples or []:
        if isinstance(ex, dict):
            text, opd = ex.get("text"), ex.get("opd")
        else:
            text, opd = ex[0], ex[1]
        if text and str(text).strip():
            rows.append({"text": str(text), "opd": opd or NONE, "channel": None})
    return rows


def _hash(text: str) -> int:
    return zlib.crc32(normalise(text).encode("utf-8")) % 10_000


def split_holdout(rows: list[dict[str, Any]], percent: int = HOLDOUT_PERCENT) -> tuple[list, list]:
    """(train, holdout): deterministic per text; every class with >= 4 rows has a held-back row."""
    cut = percent * 100
    train, hold = [], []
    by_class: dict[str, list[tuple[int, dict]]] = {}
    for r in rows:
        by_class.setdefault(r["opd"], []).append((_hash(r["text"]), r))
    for label, items in by_class.items():
        items.sort(key=lambda x: x[0])
        held = [r for h, r in items if h < cut]
        if not held and len(items) >= 4:
            held = [items[0][1]]
        held_ids = {id(r) for r in held}
        hold.extend(held)
        train.extend(r for _h, r in items if id(r) not in held_ids)
    return train, hold


# ---------------------------------------------------------------- fitting


def fit(rows: list[dict[str, Any]], cfg: AppConfig, params: dict[str, Any] | None = None,
        calibration_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A model artifact fitted on `rows` (+ the OPD vocabulary); temperature from calibration_rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    p = {**DEFAULT_PARAMS, **(params or {})}
    p["weights"] = {**DEFAULT_PARAMS["weights"], **(params or {}).get("weights", {})}
    terms = load_terms()
    if p.get("lexicon_generic"):
        terms = {k: [e for e in v if e.strip().lower() not in GENERIC_TERMS] for k, v in terms.items()}
    rows = list(rows)
    if p["max_rows"]:
        per: Counter[str] = Counter()
        kept = []
        for r in rows:
            if per[r["opd"]] < p["max_rows"]:
                per[r["opd"]] += 1
                kept.append(r)
        rows = kept
    texts = [r["text"] for r in rows]
    labels = [r["opd"] for r in rows]
    weights = [1.0] * len(rows)
    if p["polite_copies"]:
        # Greetings, apologies and thanks around a complaint do not make it a non-complaint.
        rng = np.random.default_rng(7)
        for r in rows:
            if r["opd"] != NONE and rng.random() < p["polite_copies"]:
                texts.append(f"{_OPENERS[rng.integers(len(_OPENERS))]} {r['text']} "
                             f"{_CLOSERS[rng.integers(len(_CLOSERS))]}")
                labels.append(r["opd"])
                weights.append(1.0)
    catalogue = catalogue_phrases(cfg)
    if p["lexicon_examples"]:
        for code, entries in list(terms.items()) + list(catalogue.items()):
            for e in entries:
                texts.append(e)
                labels.append(code)
                weights.append(p["lexicon_sample_weight"])
    # Every class needs at least one example; the OPD name stands in for an empty one.
    for o in cfg.opds:
        if o.code not in labels:
            texts.append(o.name)
            labels.append(o.code)
            weights.append(1.0)
    if NONE not in labels:
        texts.append("terima kasih")
        labels.append(NONE)
        weights.append(1.0)
    classes = sorted(set(labels))
    prep = prepare(texts)
    word = TfidfVectorizer(analyzer="word", tokenizer=str.split, token_pattern=None, lowercase=False,
                           ngram_range=tuple(p["word_ngram"]), min_df=p["word_min_df"], sublinear_tf=True,
                           dtype=np.float32)
    word.fit([" ".join(t) for t in prep.toks])
    char = None
    if p["char"]:
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(p["char_ngram"]), min_df=p["char_min_df"],
                               sublinear_tf=True, lowercase=False, dtype=np.float32, max_features=300_000)
        char.fit([char_text(n, p["char_limit"]) for n in prep.norms])
    lex_phrases = {k: v for k, v in terms.items()}
    art: dict[str, Any] = {
        "format": 1,
        "classes": classes,
        "word": _plain(word),
        "char": _plain(char) if char is not None else None,
        "char_limit": p["char_limit"],
        "lexicon": PhraseMatcher(lex_phrases),
        "weights": p["weights"],
        "n_word": len(word.vocabulary_),
        "temperature": 1.0,
    }
    cat = PhraseMatcher(catalogue)
    X = featurise(art, prep, cat)
    y = np.array([classes.index(lab) for lab in labels])
    sw = np.asarray(weights, dtype=np.float64)
    # class balancing with sample weights (balanced over the weighted counts)
    counts = np.bincount(y, weights=sw, minlength=len(classes))
    sw = sw * (len(y) / (len(classes) * np.maximum(counts[y], 1e-9)))
    if p.get("model", "lr") == "svm":
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=p["C"], max_iter=p["max_iter"])
    else:
        clf = LogisticRegression(C=p["C"], max_iter=p["max_iter"], solver="lbfgs")
    clf.fit(X, y, sample_weight=sw)
    art["coef"] = clf.coef_.astype(np.float32)
    art["intercept"] = clf.intercept_.astype(np.float32)
    names = word.get_feature_names_out()
    art["word_names"] = np.array(names, dtype=object)
    art["vocab_stats"] = {"word": len(names), "char": len(char.vocabulary_) if char is not None else 0}
    if calibration_rows:
        art["temperature"] = fit_temperature(art, calibration_rows, cfg)
    from core.normalise import stem

    art["stems"] = {w: stem(w) for w in sorted({w for n in prep.norms for w in n.split()}) if w.isalpha()}
    art["params"] = {k: v for k, v in p.items()}
    art["n_examples"] = len(rows)
    art["trained_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return art


def _plain(vec: Any) -> dict[str, Any]:
    """What classification needs of a fitted TfidfVectorizer (plain dict + array: loads fast,
    no scikit-learn import at run time)."""
    return {"vocab": {str(k): int(v) for k, v in vec.vocabulary_.items()}, "idf": vec.idf_.astype(np.float64),
            "ngram": tuple(vec.ngram_range)}


def fit_temperature(art: dict[str, Any], rows: list[dict[str, Any]], cfg: AppConfig) -> float:
    """The softmax temperature minimising the negative log-likelihood on `rows`."""
    classes = art["classes"]
    rows = [r for r in rows if r["opd"] in classes]
    if len(rows) < 10:
        return 1.0
    prep = prepare([r["text"] for r in rows])
    X = featurise(art, prep, PhraseMatcher(catalogue_phrases(cfg)))
    z = np.asarray(X @ art["coef"].T) + art["intercept"]
    y = np.array([classes.index(r["opd"]) for r in rows])
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 60)):
        zz = z / t
        zz = zz - zz.max(axis=1, keepdims=True)
        logp = zz - np.log(np.exp(zz).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(len(y)), y].mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


# ---------------------------------------------------------------- evaluation


def _gold(opd: Any) -> str:
    return str(opd) if opd else NONE


def evaluate(classifier: Classifier, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Routing quality on rows {"text","opd"[,"channel"]} (opd None/NONE = non-complaint expected).

    A prediction is what ``aduan classify`` prints: the OPD, or nothing (non-complaint or
    triage). Macro-F1 averages over the classes present in the gold labels (non-complaints
    count as a class NONE when present). Triage counts as a miss for a complaint.
    """
    texts = [str(r.get("text") or "") for r in rows]
    channels = [r.get("channel") for r in rows]
    t0 = time.perf_counter()
    decisions = classifier.classify_many(texts, channels) if texts else []
    elapsed = time.perf_counter() - t0
    gold = [_gold(r.get("opd")) for r in rows]
    pred = [d.opd if d.opd else NONE for d in decisions]
    n = len(rows)
    labels = sorted(set(gold))
    per: dict[str, dict[str, float]] = {}
    for lab in sorted(set(gold) | set(pred)):
        tp = sum(1 for g, q in zip(gold, pred) if g == lab and q == lab)
        fp = sum(1 for g, q in zip(gold, pred) if g != lab and q == lab)
        fn = sum(1 for g, q in zip(gold, pred) if g == lab and q != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4),
                    "support": tp + fn, "predicted": tp + fp}
    correct = sum(1 for g, q in zip(gold, pred) if g == q)
    macro = float(np.mean([per[lab]["f1"] for lab in labels])) if labels else 0.0
    confused = Counter((g, q) for g, q in zip(gold, pred) if g != q)
    triage = sum(1 for d in decisions if d.triage)
    none_gold = [i for i, g in enumerate(gold) if g == NONE]
    return {
        "n": n,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "macro_f1": round(macro, 4),
        "per_opd": per,
        "confused": [{"expected": g, "predicted": q, "count": c} for (g, q), c in confused.most_common(10)],
        "triage": triage,
        "triage_share": round(triage / n, 4) if n else 0.0,
        "non_complaints": len(none_gold),
        "non_complaints_routed": sum(1 for i in none_gold if pred[i] != NONE),
        "complaints_marked_non_complaint": sum(1 for g, d in zip(gold, decisions)
                                               if g != NONE and not d.complaint),
        "model_version": classifier.model_version,
        "per_second": round(n / elapsed, 1) if elapsed > 0 else None,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [
        f"model {report.get('model_version', '?')}  -  {report['n']} examples",
        f"accuracy        {report['accuracy']:.3f}",
        f"macro-F1        {report['macro_f1']:.3f}",
        f"triage share    {report['triage_share']:.3f} ({report['triage']})",
        f"non-complaints routed to an OPD: {report['non_complaints_routed']} of {report['non_complaints']}",
        "",
        f"{'OPD':<16}{'precision':>10}{'recall':>8}{'F1':>7}{'support':>9}{'predicted':>11}",
    ]
    for lab, m in report["per_opd"].items():
        lines.append(f"{lab:<16}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}"
                     f"{m['support']:>9}{m['predicted']:>11}")
    if report["confused"]:
        lines += ["", "most confused (expected -> predicted: count)"]
        lines += [f"  {c['expected']} -> {c['predicted']}: {c['count']}" for c in report["confused"]]
    return "\n".join(lines)


# ---------------------------------------------------------------- model store


def save_model(art: dict[str, Any], path: Path) -> Path:
    """Write atomically: temp file in the same directory, then os.replace."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    art = {k: v for k, v in art.items() if not k.startswith("_")}  # run-time caches stay out
    fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        joblib.dump(art, tmp, compress=("zlib", 3))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _version_name() -> str:
    return "model-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")


class _Fixed(Classifier):
    """A classifier bound to one artifact (for evaluating a model that is not current)."""

    def __init__(self, cfg: AppConfig, art: dict[str, Any] | None):
        super().__init__(cfg)
        self._art = art

    @property
    def model(self) -> dict[str, Any] | None:
        return self._art


def train(cfg: AppConfig, extra_examples: Iterable[Any] | None = None, *, params: dict[str, Any] | None = None,
          swap: bool = True, progress: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit on seed + extra examples, evaluate against the current model on the held-back slice, and
    swap the new model in (versioned, atomic) when its macro-F1 is not worse. Returns (model, report);
    report["swapped"] says whether it went live and report["path"] where."""
    say = progress or (lambda msg: None)
    from core.classify import STORE, newest_model_path

    rows = load_seed() + _as_rows(extra_examples)
    train_rows, hold = split_holdout(rows)
    say(f"training on {len(train_rows)} examples, holding back {len(hold)} ...")
    version = _version_name()
    art = fit(train_rows, cfg, params, calibration_rows=hold)
    art["version"] = version
    new_report = evaluate(_Fixed(cfg, art), hold)
    current_path = newest_model_path()
    current = None
    if current_path is not None:
        try:
            current = load_model(current_path)
        except Exception as exc:
            log.warning("current model %s unreadable: %s", current_path, exc)
    old_report = evaluate(_Fixed(cfg, current), hold) if current is not None else None
    better = old_report is None or new_report["macro_f1"] >= old_report["macro_f1"]
    report = {"new": new_report, "current": old_report, "swapped": False, "path": None, "version": version,
              "train_examples": len(train_rows), "holdout_examples": len(hold)}
    art["holdout"] = {k: new_report[k] for k in ("n", "accuracy", "macro_f1", "triage_share")}
    if better and swap:
        path = save_model(art, models_dir() / f"{version}.joblib")
        report["swapped"], report["path"] = True, str(path)
        STORE.get(force=True)
    return art, report


def ship(cfg: AppConfig | None = None, path: Path = SHIPPED_MODEL, params: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """Rebuild the shipped model from the seed corpus only (held-back slice excluded)."""
    cfg = cfg or default_config()
    train_rows, hold = split_holdout(load_seed())
    art = fit(train_rows, cfg, params, calibration_rows=hold)
    art["version"] = "seed-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    report = evaluate(_Fixed(cfg, art), hold)
    art["holdout"] = {k: report[k] for k in ("n", "accuracy", "macro_f1", "triage_share")}
    save_model(art, path)
    return {"path": str(path), "version": art["version"], "holdout": report,
            "size_bytes": path.stat().st_size}


# ---------------------------------------------------------------- CLI bodies


def _read_jsonl(stream: IO[str], err: IO[str], need: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            print(f"line {n}: not valid JSON ({exc.args[0] if exc.args else exc})", file=err)
            continue
        if not isinstance(obj, dict):
            print(f"line {n}: expected a JSON object", file=err)
            continue
        missing = [k for k in need if k not in obj]
        if missing:
            print(f"line {n}: missing {', '.join(repr(m) for m in missing)}", file=err)
            continue
        if not isinstance(obj.get("text"), str):
            print(f"line {n}: 'text' must be a string", file=err)
            continue
        rows.append((n, obj))
    return rows


def cli_classify(stdin: IO[str], stdout: IO[str], cfg: AppConfig, stderr: IO[str] | None = None,
                 batch: int = 512) -> int:
    """`aduan classify`: {"id","text"[,"channel"]} lines in, {"id","opd","confidence"} lines out.
    A bad line gets an error on stderr naming its line number; the others are still classified and
    the exit status stays 0 (like `aduan ingest`)."""
    from core.classify import get_classifier

    err = stderr or sys.stderr
    clf = get_classifier(cfg)
    buf: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        decisions = clf.classify_many([o["text"] for _, o in buf], [o.get("channel") for _, o in buf])
        for (_, o), d in zip(buf, decisions):
            stdout.write(json.dumps({"id": o.get("id"), "opd": d.opd, "confidence": round(d.confidence, 4)},
                                    ensure_ascii=False) + "\n")
        stdout.flush()
        buf.clear()

    for n, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            if "id" not in obj:
                raise ValueError("missing 'id'")
            if not isinstance(obj.get("text"), str):
                raise ValueError("missing 'text' (a string)")
        except ValueError as exc:
            print(f"line {n}: {exc}", file=err)
            continue
        buf.append((n, obj))
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return 0


def cli_eval(path: Path | str, cfg: AppConfig, as_json: bool = False, stdout: IO[str] | None = None,
             stderr: IO[str] | None = None) -> int:
    """`aduan eval classify FILE`: lines {"id","text","opd"} (opd null = non-complaint expected)."""
    from core.classify import get_classifier

    out, err = stdout or sys.stdout, stderr or sys.stderr
    with open(path, encoding="utf-8") as fh:
        rows = [o for _, o in _read_jsonl(fh, err, ("text", "opd"))]
    if not rows:
        print("no usable lines", file=err)
        return 1
    report = evaluate(get_classifier(cfg), rows)
    print(json.dumps(report, ensure_ascii=False, indent=None) if as_json else format_report(report), file=out)
    return 0


def cli_train(cfg: AppConfig, stdout: IO[str] | None = None) -> int:
    """`aduan train`: retrain from the seed corpus + the database's labels; swap in if not worse."""
    out = stdout or sys.stdout
    extra: list[tuple[str, str | None]] = []
    try:
        from core.db import session_scope

        with session_scope() as session:
            extra = labelled_examples(session)
    except Exception as exc:
        print(f"database labels unavailable ({exc}); training on the seed corpus only", file=out)
    print(f"{len(extra)} operator-labelled examples from the database", file=out)
    _art, report = train(cfg, extra, progress=lambda m: print(m, file=out, flush=True))
    new, old = report["new"], report["current"]
    print(f"new model {report['version']}: macro-F1 {new['macro_f1']:.3f}, accuracy {new['accuracy']:.3f}, "
          f"triage {new['triage_share']:.3f} on {new['n']} held-back examples", file=out)
    if old is not None:
        print(f"current model {old['model_version']}: macro-F1 {old['macro_f1']:.3f}, "
              f"accuracy {old['accuracy']:.3f}", file=out)
    if report["swapped"]:
        print(f"swapped in: {report['path']}", file=out)
    else:
        print("not swapped: the new model is worse than the current one", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ship", action="store_true", help="rebuild core/data/model/model.joblib from the seed corpus")
    ap.add_argument("--eval", metavar="FILE", help="evaluate the current model on a JSONL file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = default_config()
    if args.ship:
        t0 = time.time()
        res = ship(cfg)
        print(format_report(res["holdout"]))
        print(f"\nwrote {res['path']} ({res['size_bytes'] / 1e6:.1f} MB, version {res['version']}) "
              f"in {time.time() - t0:.0f} s")
        return 0
    if args.eval:
        return cli_eval(args.eval, cfg)
    ap.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
