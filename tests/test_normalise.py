"""The normaliser: informal Indonesian, Suroboyoan, hashtags, emoji, stemming and stopwords."""

from __future__ import annotations

import time

import pytest

from core.normalise import normalise, stem, tokens


@pytest.mark.parametrize("raw, expected", [
    ("tlg sampah d TPS blm diangkut", "tolong sampah di tps belum diangkut"),
    ("lampu pju gg 5 mati udh seminggu min", "lampu pju gang 5 mati sudah seminggu admin"),
    ("Jln rusak parah, gak ada perbaikan", "jalan rusak parah tidak ada perbaikan"),
])
def test_slang_becomes_formal(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("dalane rusak parah rek", "jalan rusak parah"),
    ("dalan e bolong", "jalan lubang"),
    ("lampune mati wis suwe", "lampu mati sudah lama"),
    ("banyune PDAM gak metu", "air pdam tidak"),
    ("omahe kobongan cak", "rumah kebakaran"),
])
def test_suroboyoan(raw: str, expected: str) -> None:
    assert normalise(raw).startswith(expected)


@pytest.mark.parametrize("raw, expected", [
    ("#JalanRusak", "jalan rusak"),
    ("#SampahMenumpuk di kampung", "sampah menumpuk di kampung"),
    ("#jalanrusak #lampumati", "jalan rusak lampu mati"),
    ("#PJUMati", "pjumati"),  # all-caps run: at least not lost
])
def test_hashtags_are_split(raw: str, expected: str) -> None:
    out = normalise(raw)
    if expected == "pjumati":
        assert "pju" in out
    else:
        assert out == expected


def test_repeated_letters_are_squashed() -> None:
    assert normalise("tolonggg") == "tolong"
    assert normalise("maaaaf") == "maaf"
    assert normalise("parahhhh bangettt") in ("parah sangat", "parah banget")


def test_urls_mentions_emails_and_emoji() -> None:
    out = normalise("@dishub_sby cek https://t.co/abc123 www.contoh.id ke warga@mail.com 🔥🔥 😭")
    assert "http" not in out and "dishub_sby" not in out and "mail" not in out and "contoh" not in out
    assert "api" in out  # the fire emoji means something for routing
    assert normalise("😭😭😭") == ""


def test_numbers_that_locate_are_kept() -> None:
    out = normalise("RT 03 RW 05 gg 5 lpg 3 kg")
    assert "rt 03" in out and "rw 05" in out and "gang 5" in out and "3 kg" in out


def test_reduplication() -> None:
    assert normalise("anak2 sekolah") == "anak anak sekolah"


def test_polite_izin_is_not_a_permit() -> None:
    assert "izin" not in normalise("Mohon izin bertanya soal sampah")
    assert "izin" in normalise("usaha ini tidak punya izin")


@pytest.mark.parametrize("raw, fixed", [
    ("sapmah di tps", "sampah"),        # swapped letters
    ("jembtan ambrol", "jembatan"),     # a dropped letter
    ("pemadm datang", "pemadam"),
    ("tersumbta got", "tersumbat"),
    ("kebakaarn rumah", "kebakaran"),
])
def test_thumb_slips_in_routing_words_are_fixed(raw: str, fixed: str) -> None:
    assert fixed in normalise(raw).split()


def test_names_places_and_real_words_are_not_corrected() -> None:
    assert normalise("PKL di Jl. Kapas Krampung") == "pkl di jalan kapas krampung"  # not "kampung"
    assert "demak" in normalise("jalan demak macet").split()  # a street, not "demam"
    assert "pasir" in normalise("truk pasir lewat").split()  # a real word, not "pasar"


def test_sip_is_a_licence_only_where_the_text_says_so() -> None:
    assert "izin praktik" in normalise("Permohonan SIP sudah sebulan")
    assert "izin praktik" in normalise("sip bidan saya belum terbit")
    for chat in ("sip min, makasih", "oke sip", "sip gk papa min", "sip saya tunggu kabarnya"):
        assert "izin" not in normalise(chat), chat


@pytest.mark.parametrize("raw, expected", [
    ("terima ksh byk", "terima kasih banyak"),
    ("hatur nuhun", "terima kasih"),
    ("runtah di solokan teu acan diangkut", "sampah di selokan belum diangkut"),
    ("pipa bocor maneh ping limo", "pipa bocor lagi lima kali"),
])
def test_courtesy_and_words_of_other_regions(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_tokens_stem_and_drop_stopwords_but_keep_routing_words() -> None:
    toks = tokens("Lampu lalu lintas di perempatan yang mati")
    assert "lalu" in toks and "lintas" in toks and "lampu" in toks and "mati" in toks
    assert "yang" not in toks and "di" not in toks
    assert "lubang" in tokens("jalan berlubang")
    toks = tokens("air tidak keluar dari kran")
    assert "air" in toks and "keluar" in toks
    assert "tanpa" in tokens("usaha tanpa izin") and "izin" in tokens("perizinan usaha")


def test_area_words_are_not_officials() -> None:
    assert stem("kelurahan") == "kelurahan" and stem("lurah") == "lurah"
    assert stem("kecamatan") != stem("camat")


def test_empty_and_odd_input() -> None:
    assert normalise("") == "" and tokens("") == []
    assert normalise("   \n\t ") == ""
    assert normalise("123") == "123"


def test_fast_enough() -> None:
    texts = [f"tlg min dalane rusak parah nang gg {i} udh {i} minggu #JalanRusak 🔥" for i in range(5000)]
    t0 = time.perf_counter()
    for t in texts:
        tokens(t)
    assert time.perf_counter() - t0 < 3.0
