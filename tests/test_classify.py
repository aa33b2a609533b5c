"""The router on the shipped model: every OPD, non-complaints, admin rules, triage, reasons."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core import classify
from core.classify import Decision, get_classifier
from core.config import ClassifyConfig, ClassifyRule
from core.train import default_config

# Written for this test: none of these sentences is in the seed corpus.
ROUTED = {
    "DSDABM": "jalan depan rumah saya berlubang besar dan aspalnya ngelupas, bahaya buat motor",
    "DISHUB": "traffic light di perempatan dekat pasar mati sejak pagi, kendaraan semrawut",
    "DLH": "sampah di TPS belakang pasar sudah 4 hari tidak diangkut, baunya menyengat",
    "DINKES": "antrean di puskesmas lama sekali dan obat untuk anak saya kosong",
    "DISPENDIK": "SD negeri minta uang seragam dan buku LKS mahal sekali ke wali murid",
    "DISPENDUKCAPIL": "sudah 2 bulan cetak KTP elektronik belum jadi, katanya blanko habis",
    "SATPOLPP": "PKL berjualan di trotoar sampai pejalan kaki harus turun ke jalan",
    "DINSOS": "nenek saya warga miskin tapi tidak pernah dapat bansos PKH, tolong didata",
    "DAMKAR": "ada ular kobra masuk ke dapur rumah, mohon bantuan evakuasi",
    "BPBD": "angin puting beliung merobohkan beberapa rumah warga tadi sore",
    "PDAM": "air PDAM di rumah mati total sejak kemarin, tidak ada pemberitahuan",
    "DPRKPP": "atap unit rusunawa bocor dan pengelola rusun tidak memperbaiki",
    "BAPENDA": "tagihan PBB tahun ini naik drastis padahal NJOP tidak berubah",
    "DISKOMINFO": "wifi publik di taman tidak bisa konek sama sekali, aplikasinya juga error",
    "DKPP": "banyak anjing liar berkeliaran di kampung, warga takut rabies",
    "DINKOPDAG": "gas LPG 3 kg langka di pangkalan, harganya jadi mahal",
    "DPMPTSP": "pengajuan NIB lewat OSS tidak diproses sudah sebulan, izin usaha saya tertahan",
    "DISPERINAKER": "THR karyawan pabrik tidak dibayar perusahaan, gaji juga telat",
    "KEWILAYAHAN": "petugas di kantor kelurahan lambat melayani surat pengantar, antri seharian",
}

NON_COMPLAINTS = [
    "selamat pagi admin",
    "terima kasih min, sudah ditangani dengan cepat 🙏",
    "PROMO slot gacor maxwin, bonus new member 100% daftar sekarang",
    "halo",
    "assalamualaikum wr wb",
]


@pytest.fixture(autouse=True)
def _fresh_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data dir: the shipped model routes."""
    monkeypatch.setenv("ADUAN_DATA_DIR", str(tmp_path))
    classify.STORE.reset()
    classify._CACHE.clear()


def test_shipped_model_exists_small_and_loads_fast() -> None:
    assert classify.SHIPPED_MODEL.exists()
    assert classify.SHIPPED_MODEL.stat().st_size < 20_000_000
    t0 = time.perf_counter()
    art = classify.load_model(classify.SHIPPED_MODEL)
    assert time.perf_counter() - t0 < 1.0
    assert set(ROUTED) <= set(art["classes"])


@pytest.mark.parametrize("opd", sorted(ROUTED))
def test_clear_complaints_reach_their_opd(opd: str) -> None:
    d = get_classifier(default_config()).classify(ROUTED[opd], "telegram")
    assert isinstance(d, Decision)
    assert d.opd == opd, d
    assert d.complaint and not d.triage and d.candidate == opd
    assert 0.0 < d.confidence <= 1.0
    assert d.model_version.startswith("seed-")


def test_batch_equals_single_and_is_fast() -> None:
    clf = get_classifier(default_config())
    texts = list(ROUTED.values()) + NON_COMPLAINTS
    many = clf.classify_many(texts, ["whatsapp"] * len(texts))
    assert [d.opd for d in many] == [clf.classify(t).opd for t in texts]
    batch = texts * 120
    t0 = time.perf_counter()
    clf.classify_many(batch)
    rate = len(batch) / (time.perf_counter() - t0)
    assert rate > 1000, rate  # the target is 2,000/s; leave room for a loaded CI machine


@pytest.mark.parametrize("text", NON_COMPLAINTS)
def test_non_complaints_get_no_opd(text: str) -> None:
    d = get_classifier(default_config()).classify(text)
    assert d.opd is None and d.complaint is False and d.triage is False


def test_empty_text_is_not_a_complaint() -> None:
    d = get_classifier(default_config()).classify("")
    assert d.opd is None and not d.complaint


def test_forcing_admin_rule_wins() -> None:
    cfg = default_config(classify=ClassifyConfig(rules=[
        ClassifyRule(opd="DLH", phrases=["ular sanca"], force=True),
        ClassifyRule(opd=None, pattern=r"\bkuis\s+berhadiah\b", force=True),
    ]))
    d = get_classifier(cfg).classify("ada ular sanca masuk ke dapur rumah, mohon bantuan evakuasi")
    assert d.opd == "DLH" and d.confidence == 1.0
    assert any("ular sanca" in r for r in d.reasons)
    d = get_classifier(cfg).classify("Ikuti KUIS BERHADIAH jalan rusak terbaik!")
    assert d.opd is None and d.complaint is False


def test_weighted_rule_shifts_the_decision() -> None:
    text = "kabel menjuntai di depan gang"
    base = get_classifier(default_config()).classify(text)
    cfg = default_config(classify=ClassifyConfig(rules=[ClassifyRule(opd="DISKOMINFO", phrases=["kabel"],
                                                                     weight=8.0)]))
    d = get_classifier(cfg).classify(text)
    assert d.opd == "DISKOMINFO" and d.confidence > base.confidence or base.opd == "DISKOMINFO"


def test_low_confidence_goes_to_triage() -> None:
    cfg = default_config(classify=ClassifyConfig(threshold=0.99))
    d = get_classifier(cfg).classify("mohon dicek kondisinya di dekat balai, sudah lama begini")
    assert d.triage and d.opd is None and d.complaint
    assert d.candidate is not None and d.confidence < 0.99


def test_reasons_are_meaningful_words() -> None:
    d = get_classifier(default_config()).classify("lampu PJU di gang 5 mati total, jalan gelap")
    assert d.opd == "DSDABM"
    joined = " ".join(d.reasons)
    assert "lampu" in joined or "pju" in joined, d.reasons
    assert all(len(r) >= 2 for r in d.reasons) and len(d.reasons) <= 5
    d = get_classifier(default_config()).classify(ROUTED["PDAM"])
    assert any("pdam" in r or "air" in r for r in d.reasons), d.reasons


def test_informal_and_suroboyoan_styles() -> None:
    clf = get_classifier(default_config())
    assert clf.classify("dalane rusak parah rek, bolong nang endi2").opd == "DSDABM"
    assert clf.classify("tlg sampah d TPS blm diangkut min 😭").opd == "DLH"
    assert clf.classify("#SampahMenumpuk #Surabaya").opd == "DLH"


# Written for this test: thumb slips, Sundanese/Javanese words, a licence called "SIP".
OTHER_STYLES = {
    "jembtan desa ambrol, warga gk bisa lewat": "DSDABM",
    "pdm mati total dr subuh": "PDAM",
    "pipa di depan pasar bocor maneh, ping limo wes taun iki": "PDAM",
    "runtah numpuk di pinggir jalan teu acan diangkut": "DLH",
    "Permohonan SIP": "DPMPTSP",
}


@pytest.mark.parametrize("text", sorted(OTHER_STYLES))
def test_typos_and_other_regions_words_still_route(text: str) -> None:
    d = get_classifier(default_config()).classify(text)
    assert d.opd == OTHER_STYLES[text], (d.opd, d.candidate, d.reasons)


@pytest.mark.parametrize("text", ["Terima ksh byk", "hatur nuhun pisan min", "punten, hatur nuhun",
                                  "sip gk papa min", "mohon doanya, anak saya besok ujian"])
def test_thanks_in_other_words_is_not_routed(text: str) -> None:
    d = get_classifier(default_config()).classify(text)
    assert d.opd is None and not d.complaint, (d.opd, d.reasons)


# Written for this test, in the style of a regency's LAPOR! reports (title, then a body that
# names a desa, an RT/RW, the kepala desa and a housing estate in passing).
FORMAL_REGENCY = {
    "DSDABM": "Jalan Poros Desa Hancur. Saya warga Perumahan Bukit Hijau RT 02 RW 07 Desa Cempaka. Jalan "
              "penghubung ke kecamatan berlubang dan aspalnya terkelupas sepanjang satu kilometer. Sudah lapor ke "
              "kepala desa tetapi belum diperbaiki. Mohon ditindaklanjuti.",
    "DINSOS": "Bantuan PKH Berhenti. Dengan hormat, NIK saya terdaftar di DTKS sebagai keluarga penerima manfaat "
              "tetapi bantuan PKH tidak cair sejak awal tahun. Pendamping di desa tidak bisa menjelaskan. Mohon "
              "dicek data penerima bantuan sosial kami.",
    "DPMPTSP": "Izin Usaha Tertahan. Yth. Bapak Bupati, saya sudah membawa surat pengantar RT/RW dan surat "
               "keterangan usaha dari desa, lalu mengajukan izin usaha di OSS dua bulan lalu. Izin belum terbit "
               "dan petugas perizinan tidak memberi kepastian.",
}


@pytest.mark.parametrize("opd", sorted(FORMAL_REGENCY))
def test_formal_regency_reports_are_not_pulled_by_incidental_words(opd: str) -> None:
    d = get_classifier(default_config()).classify(FORMAL_REGENCY[opd])
    assert d.opd == opd, (d.opd, d.candidate, d.reasons)


@pytest.mark.parametrize("text", ["gk jadi min", "maaf salah kirim",
                                  "Les privat matematika SMP, guru datang ke rumah. Hubungi WA kami"])
def test_cancellations_and_service_ads_are_not_complaints(text: str) -> None:
    d = get_classifier(default_config()).classify(text)
    assert not d.complaint and d.opd is None


def test_rules_leave_real_complaints_alone() -> None:
    clf = get_classifier(default_config())
    assert clf.classify("lampu jalan tidak jadi dipasang padahal sudah dijanjikan").complaint
    assert clf.classify("developer perumahan sulit dihubungi, sertifikat rumah belum diserahkan").complaint


def test_a_citizen_giving_their_phone_number_is_not_spam() -> None:
    """'hubungi 0812…' in a complaint is the citizen's contact, not an advertisement."""
    from core.classify import get_classifier
    from core.train import default_config

    clf = get_classifier(default_config())
    d = clf.classify("Jalan berlubang besar di Jl. Rungkut Asri Timur, saya Budi, hubungi 0812-3456-7890 atau "
                     "budi.s@example.com")
    assert d.complaint and d.opd == "DSDABM"
    ad = clf.classify("Les privat matematika SD SMP, hubungi kami di 0812-0000-1111, cek bio")
    assert not ad.complaint and ad.opd is None
