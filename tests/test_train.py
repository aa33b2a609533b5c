"""Training, the versioned model store, hot swapping, evaluation and the CLI bodies."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, create_engine

from core import classify
from core.classify import get_classifier
from core.train import (DEFAULT_OPDS, cli_classify, cli_eval, default_config, evaluate, fit, format_report,
                        labelled_examples, load_seed, save_model, split_holdout, train)

WEAK = {"char": False, "lexicon_examples": False, "max_rows": 3, "C": 0.01}
FAST = {"char": False, "lexicon_examples": False, "polite_copies": 0, "max_rows": 20}


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ADUAN_DATA_DIR", str(tmp_path))
    classify.STORE.reset()
    classify._CACHE.clear()
    return tmp_path


def test_default_catalogue_has_the_nineteen_opds() -> None:
    assert len(DEFAULT_OPDS) == 19
    assert {o["code"] for o in DEFAULT_OPDS} >= {"DSDABM", "DISHUB", "KEWILAYAHAN", "PDAM"}
    assert all(o["keywords"] and o["name"] for o in DEFAULT_OPDS)


def test_holdout_is_deterministic_and_stratified() -> None:
    rows = load_seed()
    tr1, ho1 = split_holdout(rows)
    tr2, ho2 = split_holdout(rows)
    assert [r["text"] for r in ho1] == [r["text"] for r in ho2]
    assert len(tr1) + len(ho1) == len(rows)
    assert {r["opd"] for r in ho1} == {r["opd"] for r in rows}


def test_trained_model_is_picked_up_without_restart_and_worse_is_refused(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = default_config()
    clf = get_classifier(cfg)
    assert clf.model_version.startswith("seed-")  # the shipped model, while the data dir is empty
    # A weak current model in the data dir ...
    tr, _ = split_holdout(load_seed())
    weak = fit(tr, cfg, WEAK)
    weak["version"] = "model-20000101000000"
    save_model(weak, data_dir / "models" / "model-20000101000000.joblib")
    monkeypatch.setattr(classify, "RELOAD_INTERVAL", 0.0)
    assert clf.model_version == "model-20000101000000"
    # ... is replaced by a better one, and the running classifier notices.
    _art, report = train(cfg, [("tolong sampah di got depan rumah diangkut", "DLH")], params=FAST)
    assert report["swapped"] and Path(report["path"]).exists()
    assert report["new"]["macro_f1"] >= report["current"]["macro_f1"]
    assert clf.model_version == report["version"]
    assert clf.classify("air PDAM mati sejak kemarin").model_version == report["version"]
    assert not list((data_dir / "models").glob("*.tmp"))
    # Training a worse model now leaves the good one in place.
    monkeypatch.setattr(classify, "RELOAD_INTERVAL", 30.0)
    _art, report2 = train(cfg, [], params=WEAK)
    assert not report2["swapped"] and report2["new"]["macro_f1"] < report2["current"]["macro_f1"]
    assert sorted(p.name for p in (data_dir / "models").glob("model-*.joblib"))[-1] == Path(report["path"]).name
    assert clf.model_version == report["version"]


def test_broken_newest_file_falls_back(data_dir: Path) -> None:
    (data_dir / "models").mkdir()
    (data_dir / "models" / "model-29991231235959.joblib").write_bytes(b"not a model")
    d = get_classifier(default_config()).classify("air PDAM mati")
    assert d.opd == "PDAM" and d.model_version.startswith("seed-")


def test_labelled_examples_tolerates_a_missing_table(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with Session(engine) as s:
        assert labelled_examples(s) == []
        s.execute(text("CREATE TABLE label (id INTEGER PRIMARY KEY, text TEXT, opd TEXT, reason TEXT)"))
        s.execute(text("INSERT INTO label (text, opd) VALUES ('got mampet', 'DSDABM'), ('makasih', NULL)"))
        assert sorted(labelled_examples(s), key=str) == [("got mampet", "DSDABM"), ("makasih", None)]


def test_evaluate_and_format_report() -> None:
    rows = [{"id": 1, "text": "air PDAM mati total", "opd": "PDAM"},
            {"id": 2, "text": "sampah menumpuk di TPS", "opd": "DLH"},
            {"id": 3, "text": "selamat pagi admin", "opd": None},
            {"id": 4, "text": "jalan berlubang besar", "opd": "DLH"}]
    rep = evaluate(get_classifier(default_config()), rows)
    assert rep["n"] == 4 and rep["accuracy"] == 0.75
    assert rep["per_opd"]["PDAM"]["f1"] == 1.0 and rep["non_complaints_routed"] == 0
    assert rep["confused"][0] == {"expected": "DLH", "predicted": "DSDABM", "count": 1}
    table = format_report(rep)
    assert "macro-F1" in table and "DLH -> DSDABM" in table


def test_cli_classify_reports_bad_lines_and_keeps_going() -> None:
    stdin = io.StringIO('{"id": "a", "text": "air PDAM mati", "channel": "sms"}\n'
                        'not json\n'
                        '{"id": "b"}\n'
                        '\n'
                        '{"id": 7, "text": "terima kasih min"}\n')
    out, err = io.StringIO(), io.StringIO()
    rc = cli_classify(stdin, out, default_config(), stderr=err)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["id"] for x in lines] == ["a", 7]
    assert lines[0]["opd"] == "PDAM" and 0 < lines[0]["confidence"] <= 1
    assert lines[1]["opd"] is None
    assert set(lines[0]) == {"id", "opd", "confidence"}
    assert "line 2" in err.getvalue() and "line 3" in err.getvalue()
    assert rc == 0


def test_cli_eval_table_and_json(tmp_path: Path) -> None:
    f = tmp_path / "gold.jsonl"
    f.write_text('{"id": 1, "text": "air PDAM mati", "opd": "PDAM"}\n'
                 '{"id": 2, "text": "halo min", "opd": null}\n', encoding="utf-8")
    out = io.StringIO()
    assert cli_eval(f, default_config(), True, stdout=out) == 0
    rep = json.loads(out.getvalue())
    assert rep["accuracy"] == 1.0 and rep["triage_share"] == 0.0 and "per_opd" in rep
    out = io.StringIO()
    assert cli_eval(f, default_config(), False, stdout=out) == 0
    assert "accuracy" in out.getvalue()


def test_generic_words_stay_out_of_the_vocabulary_features() -> None:
    from core.train import GENERIC_TERMS

    art = fit(load_seed(), default_config(), FAST)
    keys = {" ".join(k) for k in art["lexicon"].index}
    assert "perumah" not in keys and "perumahan" not in keys and "aplikasi" not in keys
    assert "perumahan" in GENERIC_TERMS
    # multi-word entries with those words still count ("perumahan kumuh", "aplikasi perizinan")
    assert any("perumahan" in k or "rumah" in k for k in keys)
    art2 = fit(load_seed(), default_config(), {**FAST, "lexicon_generic": False})
    assert len(art2["lexicon"].index) > len(art["lexicon"].index)


def test_only_the_opening_of_a_long_report_feeds_the_character_features() -> None:
    from core.route_features import char_text

    art = fit(load_seed(), default_config(), {**FAST, "char": True})
    assert art["char_limit"] == 150
    assert char_text("a" * 400, art["char_limit"]) == "a" * 150
    assert char_text("lampu mati", art["char_limit"]) == "lampu mati"
