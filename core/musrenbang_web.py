"""e-Musrenbang on the web: the public list (by kelurahan, status, year) with its CSV export for the
Musrenbang meeting, the public proposal form with a photo upload, and the console page where each
verification step is decided by its role (see `core.musrenbang.STEPS`).

Public pages never show the proposer; the console shows their name and number only to admins and
operators (masked for everybody else, as the console does for complaints).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlmodel import select

from core import media, musrenbang
from core.civic_models import PROPOSAL_STATUSES, Proposal
from core.config import AppConfig
from core.console import deps
from core.db import session_scope
from core.replies import take_pending

public = APIRouter(prefix="/musrenbang", include_in_schema=False)
console = APIRouter(prefix="/console/musrenbang", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
VIEW = deps.require("admin", "operator", "opd", "viewer")


def _filters(request: Request) -> dict:
    p = request.query_params
    year = p.get("tahun", "")
    return {"number": p.get("nomor", "").strip().upper()[:32], "kelurahan": p.get("kelurahan", "")[:80],
            "status": p.get("status", "") if p.get("status", "") in PROPOSAL_STATUSES else "",
            "year": int(year) if year.isdigit() and 2000 <= int(year) <= 2100 else None}


# ---------------------------------------------------------------- public


@public.get("")
def public_list(request: Request) -> Response:
    f = _filters(request)
    ctx = deps.anonymous_ctx(request)
    with session_scope() as s:
        rows = [musrenbang.public_row(ctx.cfg, p) for p in s.exec(musrenbang.public_query(**f).limit(2000)).all()]
        years = sorted({y for y in s.exec(select(Proposal.year).distinct()).all()}, reverse=True)
    return deps.render(ctx, "musrenbang/public.html", rows=rows, f=f, years=years, new=request.query_params.get("baru") == "1",
                       statuses=PROPOSAL_STATUSES, labels=musrenbang.STATUS_LABEL,
                       kelurahan=musrenbang.kelurahan_choices())


@public.get("/ekspor.csv")
def public_csv(request: Request) -> Response:
    f = _filters(request)
    with session_scope() as s:
        body = musrenbang.export_csv(request.app.state.cfg, list(s.exec(musrenbang.public_query(**f)).all()))
    name = f"usulan-musrenbang-{f['year'] or 'semua'}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@public.get("/foto/{number}")
def public_photo(number: str) -> Response:
    with session_scope() as s:
        p = s.exec(select(Proposal).where(Proposal.number == number.upper())).first()
        photo = dict(p.photo) if p and p.photo else None
    if not photo or not photo.get("path"):
        return Response("Foto tidak ada", status_code=404)
    return FileResponse(media.media_file(photo), media_type=photo.get("mime", "image/jpeg"))


@public.get("/usul")
def form_page(request: Request) -> Response:
    return _form(request)


def _form(request: Request, error: str = "", values: dict | None = None, status: int = 200) -> Response:
    return deps.render(deps.anonymous_ctx(request), "musrenbang/form.html", status_code=status, error=error,
                       v=values or {}, kelurahan=musrenbang.kelurahan_choices())


@public.post("/usul")
async def form_submit(request: Request) -> Response:
    """Validate everything (photo by its bytes, size first) before storing anything; 400 with the reason."""
    cfg = request.app.state.cfg
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return _form(request, "Formulir harus dikirim dengan unggahan foto (multipart/form-data).", status=400)
    if int(request.headers.get("content-length") or 0) > cfg.media.max_bytes + 100_000:
        return _form(request, f"Foto terlalu besar (maksimal {cfg.media.max_bytes // 1_000_000} MB).", status=413)
    form = await request.form()
    v = {k: (form.get(k) or "").strip() if isinstance(form.get(k), str) else ""
         for k in ("title", "description", "kelurahan", "lat", "lon", "name", "phone")}
    problem = None
    if not 5 <= len(v["title"]) <= 200:
        problem = "Judul usulan perlu 5 sampai 200 huruf."
    elif not 15 <= len(v["description"]) <= 4000:
        problem = "Uraian usulan perlu 15 sampai 4000 huruf."
    place = musrenbang.find_kelurahan(v["kelurahan"])
    if problem is None and place is None:
        problem = "Pilih kelurahan lokasi usulan dari daftar."
    lat = lon = None
    if problem is None and (v["lat"] or v["lon"]):
        try:
            lat, lon = float(v["lat"]), float(v["lon"])
            assert -90 <= lat <= 90 and -180 <= lon <= 180
        except (ValueError, AssertionError):
            problem = "Titik lokasi tidak valid (lintang dan bujur dalam derajat desimal)."
    upload = form.get("photo")
    photo = None
    if problem is None:
        if upload is None or isinstance(upload, str) or not upload.filename:
            problem = "Lampirkan foto lokasi usulan."
        else:
            data = await upload.read(cfg.media.max_bytes + 1)
            try:
                photo = media.store(data, media.check(data, cfg))
            except media.Refused as exc:
                problem = f"Foto ditolak: {_refusal(str(exc))}"
    if problem is not None:
        return _form(request, problem, v, status=400)
    assert place is not None
    with session_scope() as s:
        p = musrenbang.create(s, cfg, channel="web", actor="web", proposer_name=v["name"][:120] or None,
                              proposer_phone=v["phone"][:32] or None,
                              data={"title": v["title"], "description": v["description"], "photo": photo,
                                    "lat": lat, "lon": lon, "kelurahan": place[0], "kecamatan": place[1]})
        number = p.number
    return RedirectResponse(f"/musrenbang?nomor={number}&baru=1", status_code=303)


def _refusal(reason: str) -> str:
    if reason.startswith("too large"):
        return "ukurannya terlalu besar."
    return "berkas bukan foto JPEG, PNG atau WebP yang utuh."


# ---------------------------------------------------------------- console


@console.get("")
def console_list(request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    f = _filters(request)
    with session_scope() as s:
        q = musrenbang.public_query(**f, opd=ctx.user.opd_code if ctx.role == "opd" else None)  # type: ignore[union-attr]
        items = []
        for p in s.exec(q.limit(500)).all():
            items.append({"p": musrenbang.public_row(ctx.cfg, p), "id": p.id,
                          "proposer": (p.proposer_name or "") if ctx.role in ("admin", "operator") else "",
                          "contact": deps.mask(p.proposer_phone, ctx) if ctx.role in ("admin", "operator") else "",
                          "actions": musrenbang.allowed_actions(p, ctx.role, ctx.user.opd_code if ctx.user else None),
                          "step": musrenbang.STEPS[p.status].name if p.status in musrenbang.STEPS else "",
                          "status": p.status,
                          "history": [(deps.wib(ctx.cfg, e.at), e.actor, e.action, e.to_status, e.reason)
                                      for e in musrenbang.history(s, p.id)]})  # type: ignore[arg-type]
    return deps.render(ctx, "musrenbang/console.html", items=items, f=f, statuses=PROPOSAL_STATUSES,
                       labels=musrenbang.STATUS_LABEL, opds=ctx.cfg.opds, flash=request.query_params.get("ok", ""),
                       error=request.query_params.get("err", ""))


@console.post("/{proposal_id}/keputusan")
async def console_decide(proposal_id: int, request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    form = await request.form()
    action, reason, opd = (str(form.get(k) or "") for k in ("action", "reason", "opd"))
    with session_scope() as s:
        p = s.get(Proposal, proposal_id)
        if p is None:
            raise deps.NotFound()
        if ctx.role == "opd" and p.opd_code != (ctx.user.opd_code if ctx.user else None):
            raise deps.Forbidden()
        if not musrenbang.allowed_actions(p, ctx.role, ctx.user.opd_code if ctx.user else None):
            raise deps.Forbidden("Peran Anda tidak memutuskan tahap usulan ini.")
        try:
            musrenbang.decide(s, ctx.cfg, p, action, reason, actor=ctx.username, role=ctx.role,
                              user_opd=ctx.user.opd_code if ctx.user else None, opd_code=opd or None)
        except musrenbang.DecisionError as exc:
            s.rollback()
            return _back(p.number or "", error=str(exc), status=400, ctx=ctx, request=request)
        number, pending = p.number, take_pending(s)
    musrenbang.notify_after_commit(pending)
    return RedirectResponse(f"/console/musrenbang?ok={number}#{number}", status_code=303)


def _back(number: str, error: str, status: int, ctx: deps.Ctx, request: Request) -> Response:
    return deps.render(ctx, "error.html", status_code=status, title="Keputusan belum disimpan", message=error)


def mount(app: FastAPI, cfg: AppConfig) -> None:
    """Register the public pages and the console page (from core.web._EXTENSIONS)."""
    app.include_router(public)
    app.include_router(console)

