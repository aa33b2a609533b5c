"""Open311 GeoReport v2 over real HTTP (uvicorn on loopback), real Redis and a real RQ worker,
SQLite and PostgreSQL: every response checked field by field, in JSON and in XML, against the
specification's field lists and types; submissions need an admin-issued key; no personal data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from connectors.base import Outgoing
from connectors.fakes import serve
from connectors.open311 import Open311Connector
from core.models import Message, Ticket
from core.open311 import REQUEST_FIELDS, SERVICE_FIELDS
from tests.contract import ConnectorContract

W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
PHONE = "081234567890"


def _seed(hub, opd: str | None, text: str, days_ago: float, status: str = "routed", lat: float | None = None,  # type: ignore[no-untyped-def]
          kelurahan: str | None = None, reject_reason: str | None = None) -> str:
    from core.intake import get_or_create_contact

    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    with hub.session() as s:
        contact = get_or_create_contact(s, "telegram", "6281299990000", "Budi Santoso")
        t = Ticket(channel="telegram", contact_id=contact.id, subject=text, opd_code=opd, status=status,
                   created_at=when, routed_at=when, updated_at=when, kelurahan=kelurahan,
                   kecamatan="Rungkut" if kelurahan else None, lat=lat, lon=112.78 if lat else None,
                   reject_reason=reject_reason, rejected_at=when if status == "rejected" else None)
        s.add(t)
        s.flush()
        t.number = f"ADU-{when.year}-{t.id:06d}"
        s.commit()
        return t.number


def _serve(h):  # type: ignore[no-untyped-def]
    from core.web import create_app

    h.configure(open311={"enabled": True})
    return serve(create_app(h.cfg))


@pytest.fixture
def api(hub):  # type: ignore[no-untyped-def]
    """On SQLite and PostgreSQL: for the tests whose subject is the queries."""
    running = _serve(hub)
    yield running
    running.stop()


@pytest.fixture
def api_lite(sqlite_hub):  # type: ignore[no-untyped-def]
    """On SQLite only: for the tests whose subject is not the database."""
    running = _serve(sqlite_hub)
    yield running
    running.stop()


@pytest.fixture
def key() -> str:  # type: ignore[no-untyped-def]
    """A key issued with the CLI, on whichever hub the test set up first."""
    from core.cli import app

    result = CliRunner().invoke(app, ["apikey", "add", "dashboard-bappeda"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _xml(resp: httpx.Response) -> ET.Element:
    assert resp.headers["content-type"].startswith("text/xml")
    assert resp.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(resp.content)


def _check_request_json(r: dict) -> None:
    assert tuple(r) == REQUEST_FIELDS
    assert isinstance(r["service_request_id"], str) and r["service_request_id"].startswith("ADU-")
    assert r["status"] in ("open", "closed")
    for k in ("requested_datetime", "updated_datetime"):
        assert W3C.match(r[k]), (k, r[k])
    assert r["expected_datetime"] is None or W3C.match(r["expected_datetime"])
    for k in ("status_notes", "service_name", "service_code", "description", "agency_responsible",
              "service_notice", "address", "address_id", "zipcode", "media_url"):
        assert r[k] is None or isinstance(r[k], str), k
    for k in ("lat", "long"):
        assert r[k] is None or isinstance(r[k], float), k


def _check_request_xml(el: ET.Element) -> dict:
    assert el.tag == "request"
    assert [c.tag for c in el] == list(REQUEST_FIELDS)
    row = {c.tag: c.text for c in el}
    assert row["status"] in ("open", "closed") and W3C.match(row["requested_datetime"])
    if row["lat"] is not None:
        float(row["lat"]), float(row["long"])
    return row


def test_services_list_and_definitions_follow_the_spec(sqlite_hub, api_lite):  # type: ignore[no-untyped-def]
    hub, api = sqlite_hub, api_lite
    resp = httpx.get(f"{api.url}/open311/v2/services.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    services = resp.json()
    assert [s["service_code"] for s in services] == [o.code for o in hub.cfg.opds]
    for s in services:
        assert tuple(s) == SERVICE_FIELDS
        assert isinstance(s["service_name"], str) and isinstance(s["description"], str)
        assert s["metadata"] is True and s["type"] in ("realtime", "batch", "blackbox")
        assert isinstance(s["keywords"], str) and isinstance(s["group"], str)
    dlh = next(s for s in services if s["service_code"] == "DLH")
    assert dlh["service_name"] == "Dinas Lingkungan Hidup" and "sampah" in dlh["keywords"].split(",")

    root = _xml(httpx.get(f"{api.url}/open311/v2/services.xml"))
    assert root.tag == "services" and len(root) == len(services)
    first = root[0]
    assert first.tag == "service" and [c.tag for c in first] == list(SERVICE_FIELDS)
    assert first.find("metadata").text == "true" and first.find("service_code").text == services[0]["service_code"]

    d = httpx.get(f"{api.url}/open311/v2/services/DLH.json").json()
    assert d["service_code"] == "DLH"
    attr = d["attributes"][0]
    assert set(attr) == {"variable", "code", "datatype", "required", "datatype_description", "order",
                         "description", "values"}
    assert attr["datatype"] == "singlevaluelist" and attr["variable"] is True and attr["required"] is False
    assert {"key": "Rungkut Kidul", "name": "Rungkut Kidul"} in attr["values"]
    root = _xml(httpx.get(f"{api.url}/open311/v2/services/DLH.xml"))
    assert root.tag == "service_definition" and root.find("service_code").text == "DLH"
    a = root.find("attributes/attribute")
    assert a.find("code").text == "kelurahan" and a.find("values/value/key").text

    for url in ("/open311/v2/services/NOPE.json", "/open311/v2/services/NOPE.xml", "/open311/v2/requests/ADU-1999-000001.json"):
        r = httpx.get(api.url + url)
        assert r.status_code == 404
        errs = r.json() if url.endswith("json") else [{c.tag: c.text for c in e} for e in _xml(r)]
        assert errs[0]["code"] in (404, "404") and errs[0]["description"]


def test_requests_list_filters_dates_and_hides_personal_data(hub, api):  # type: ignore[no-untyped-def]
    recent = _seed(hub, "DSDABM", f"Jalan berlubang di Jl. Rungkut Madya, hubungi saya {PHONE}", 2, lat=-7.33,
                   kelurahan="Rungkut Kidul")
    done = _seed(hub, "DLH", "Sampah menumpuk di TPS", 10, status="resolved")
    rejected = _seed(hub, "DLH", "Bukan wewenang kami", 5, status="rejected", reject_reason="Lokasi di luar kota")
    old = _seed(hub, "DLH", "Sampah lama", 120)

    resp = httpx.get(f"{api.url}/open311/v2/requests.json")
    assert resp.status_code == 200
    rows = resp.json()
    assert [r["service_request_id"] for r in rows] == [recent, rejected, done]  # last 90 days, newest first
    for r in rows:
        _check_request_json(r)
    first = rows[0]
    assert first["status"] == "open" and first["service_code"] == "DSDABM"
    assert first["agency_responsible"] == "Dinas Sumber Daya Air dan Bina Marga"
    assert first["lat"] == -7.33 and first["long"] == 112.78 and "Kel. Rungkut Kidul" in first["address"]
    assert rows[1]["status"] == "closed" and rows[1]["status_notes"] == "Lokasi di luar kota"
    assert rows[1]["expected_datetime"] is None and first["expected_datetime"] is not None
    text = resp.text
    assert PHONE not in text and "Budi" not in text and "6281299990000" not in text
    assert "[nomor disamarkan]" in first["description"]

    root = _xml(httpx.get(f"{api.url}/open311/v2/requests.xml"))
    assert root.tag == "service_requests"
    xml_rows = [_check_request_xml(e) for e in root]
    assert [r["service_request_id"] for r in xml_rows] == [recent, rejected, done]
    assert xml_rows[0]["lat"] == "-7.33" and xml_rows[0]["address_id"] is None
    assert PHONE not in httpx.get(f"{api.url}/open311/v2/requests.xml").text

    def ids(**params: str) -> list[str]:
        r = httpx.get(f"{api.url}/open311/v2/requests.json", params=params)
        assert r.status_code == 200, r.text
        return [x["service_request_id"] for x in r.json()]

    assert ids(status="open") == [recent]
    assert ids(status="closed") == [rejected, done]
    assert ids(service_code="DLH") == [rejected, done]
    assert ids(service_code="DLH,DSDABM", status="open,closed") == [recent, rejected, done]
    now = datetime.now(timezone.utc)
    assert ids(start_date=(now - timedelta(days=130)).isoformat(), end_date=(now - timedelta(days=100)).isoformat()) == [old]
    assert ids(start_date=(now - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%S+07:00")) == [recent, rejected]
    assert ids(service_request_id=f"{old},{done}", status="open") == [done, old]  # ids win over other filters
    one = httpx.get(f"{api.url}/open311/v2/requests/{recent}.json").json()
    assert len(one) == 1 and one[0] == first

    for params, why in (({"start_date": (now - timedelta(days=100)).isoformat(), "end_date": now.isoformat()}, "90 days"),
                        ({"start_date": "kemarin"}, "W3C"), ({"start_date": "2026-11-01T00:00:00"}, "time zone"),
                        ({"status": "pending"}, "status")):
        for fmt in ("json", "xml"):
            r = httpx.get(f"{api.url}/open311/v2/requests.{fmt}", params=params)
            assert r.status_code == 400
            err = r.json()[0] if fmt == "json" else {c.tag: c.text for c in _xml(r)[0]}
            assert str(err["code"]) == "400" and why in err["description"]
            if fmt == "xml":
                assert _xml(r).tag == "errors" and _xml(r)[0].tag == "error"


def test_post_needs_key_and_creates_a_routed_ticket(hub, api, key):  # type: ignore[no-untyped-def]
    url = f"{api.url}/open311/v2/requests"
    form = {"service_code": "DLH", "lat": "-7.3205", "long": "112.7687", "first_name": "Ani", "email": "ani@contoh.id",
            "description": f"Pohon tumbang menutup jalan, telepon {PHONE}", "attribute[kelurahan]": "Rungkut Kidul"}
    for bad in ({}, {"api_key": "o311_wrong"}):
        r = httpx.post(f"{url}.json", data={**form, **bad})
        assert r.status_code == 403 and r.json()[0]["code"] == 403
    r = httpx.post(f"{url}.xml", data={**form, "api_key": "o311_wrong"})
    assert r.status_code == 403 and _xml(r).tag == "errors"
    r = httpx.post(f"{url}.json", data={"api_key": key, "service_code": "DLH", "description": "x"})
    assert r.status_code == 400 and "location" in r.json()[0]["description"]
    r = httpx.post(f"{url}.json", data={**form, "api_key": key, "attribute[kelurahan]": "Atlantis"})
    assert r.status_code == 400
    with hub.session() as s:
        assert s.exec(select(Ticket)).all() == [] and s.exec(select(Message)).all() == []  # nothing stored

    r = httpx.post(f"{url}.json", data={**form, "api_key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body) == 1 and set(body[0]) == {"service_request_id", "service_notice", "account_id"}
    number = body[0]["service_request_id"]
    with hub.session() as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        msg = s.exec(select(Message).where(Message.direction == "in")).one()
    assert t.opd_code == "DLH" and t.status == "routed" and t.channel == "open311" and msg.channel == "open311"
    assert "Dinas Lingkungan Hidup" in body[0]["service_notice"]

    hub.run_worker()  # the acknowledgement goes out through the open311 connector (nothing external)
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    assert out.delivery_state == "delivered" and number in out.text

    xml = httpx.post(f"{url}.xml", data={**form, "api_key": key, "description": "Pohon tumbang lagi di Jl. Kutisari"})
    root = _xml(xml)
    assert root.tag == "service_requests" and root[0].tag == "request"
    assert [c.tag for c in root[0]] == ["service_request_id", "service_notice", "account_id"]

    got = httpx.get(f"{api.url}/open311/v2/requests/{number}.json").json()[0]
    _check_request_json(got)
    assert got["service_code"] == "DLH" and got["status"] == "open" and got["lat"] == -7.3205
    listing = httpx.get(f"{api.url}/open311/v2/requests.json").text
    for personal in (PHONE, "Ani", "ani@contoh.id"):
        assert personal not in listing


def test_revoked_key_is_refused(sqlite_hub, api_lite, key):  # type: ignore[no-untyped-def]
    hub, api = sqlite_hub, api_lite
    from core.cli import app

    form = {"api_key": key, "service_code": "DSDABM", "lat": "-7.29", "long": "112.73", "description": "Jalan berlubang"}
    assert httpx.post(f"{api.url}/open311/v2/requests.json", data=form).status_code == 200
    assert CliRunner().invoke(app, ["apikey", "revoke", "dashboard-bappeda"]).exit_code == 0
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data=form)
    assert r.status_code == 403 and r.json() == [{"code": 403, "description": "invalid api_key"}]
    with hub.session() as s:
        from core.civic_models import ApiKey

        assert key not in {k.key_hash for k in s.exec(select(ApiKey)).all()}  # only the hash is stored


class TestOpen311Contract(ConnectorContract):
    connector = Open311Connector
    fixtures = "open311"
    good_settings = {"enabled": True, "max_days": 30}
    bad_settings = ({"enabled": True, "max_days": "ninety"}, "max_days")

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        return Open311Connector(Open311Connector.Settings(enabled=True))

    def test_network_error_is_retryable(self) -> None:
        """Open311 has no provider to reach: a reply is 'delivered' by being published in status_notes,
        so sending works with no network at all (the loopback guard would fail any connection)."""
        result = self.unreachable_connector().send(Outgoing(to="x", text="Tes", idempotency_key="k1"))
        assert result.state == "delivered" and result.provider_id == "open311:k1"
