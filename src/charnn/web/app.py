"""The web app of `charnn serve`: three pages (Write, Inside, Train) and the JSON API behind them.

    GET  /api/models                      the served runs that have a checkpoint: [{"id", "name", ...}]
    POST /api/generate                    {"model", "prompt", "length", "temperature", "top_k", "top_p",
                                           "seed", "stream"} -> {"text", "chars": [{"char", "p", "model_p",
                                           "top": [[c, p] x 5]}], "seed", ...}; with "stream": true,
                                           server-sent events: "chars" (a list of those records) then "done"
    POST /api/inside                      {"model", "text"} or {"model", "split": "val", "start", "length"}
                                           -> the Inside analysis (`charnn.apps.inside`)
    GET  /api/runs                        every served run, training or not
    GET  /api/runs/{id}/metrics?offset=N  the metrics.jsonl rows after byte N and the next offset
    GET  /api/runs/{id}/samples           the samples of each epoch
    GET  /api/status                      generations running now, characters generated since the start
    GET  /openapi.json                    the schema of all of it

Every bad request gets a 4xx and a one-line {"detail": "..."}: 422 for a malformed body (pydantic),
400 for an option out of range or a prompt outside the vocabulary (`charnn.sample.check_options`,
the command line's own checks), 404 for an unknown id, 413 for a body over the limit. Generation
runs in worker threads, at most `MAX_CONCURRENT` at once; a streamed generation stops at the next
chunk once its client has gone away.
"""
from __future__ import annotations

import asyncio
import json
import secrets
from itertools import islice
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Sequence

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import sample
from ..apps import inside as inside_lib
from ..data import DataError
from ..data.vocab import VocabError
from ..train.checkpoint import Checkpoint, CheckpointError
from .limits import MAX_BODY_BYTES, MAX_CONCURRENT, MAX_LENGTH
from .runs import ID, Registry, UnknownRun
from .schemas import GenerateRequest, InsideRequest, check_id

STATIC = Path(__file__).parent / "static"
SHARED = Path(inside_lib.__file__).parent / "static"   # the Inside view's renderer, shared with `charnn inspect`
PAGES = ("write", "inside", "train")
FIRST_BATCH, MAX_BATCH = 1, 64     # records per streamed event: the first at once, then doubling


def record_json(r: sample.Record) -> dict[str, Any]:
    """A generated character as the API sends it (probabilities rounded to 6 digits)."""
    return {"char": r.char, "p": round(r.prob, 6), "model_p": round(r.model_prob, 6),
            "top": [[c, round(p, 6)] for c, p in r.top]}


def _one_line(exc: RequestValidationError) -> str:
    """The first validation error as 'field: message'."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    e = errors[0]
    loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
    msg = str(e.get("msg", "invalid value")).replace("Value error, ", "")
    return f"{loc}: {msg}" if loc else msg


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status)


def _check_run_id(run_id: str) -> str:
    try:
        check_id(run_id)
    except ValueError as exc:
        raise HTTPException(400, f"run id {exc}") from None
    if not ID.match(run_id):
        raise HTTPException(404, f"no served run has the id {run_id!r} (see /api/runs)")
    return run_id


class Stats:
    """What GET /api/status reports: generations running now and characters generated so far."""

    def __init__(self) -> None:
        self.generating = 0
        self.chars = 0


class Generation:
    """One request's records, pulled in growing batches in a worker thread, under the shared limit."""

    def __init__(self, records: Iterator[sample.Record], limit: asyncio.Semaphore, stats: Stats):
        self.records, self.limit, self.stats = records, limit, stats

    async def batches(self, request: Request | None = None) -> AsyncIterator[list[sample.Record]]:
        """Lists of records until the generation ends or (`request` given) the client disconnects."""
        n = FIRST_BATCH
        async with self.limit:
            self.stats.generating += 1
            try:
                while True:
                    if request is not None and await request.is_disconnected():
                        return
                    batch = await run_in_threadpool(lambda: list(islice(self.records, n)))
                    if not batch:
                        return
                    self.stats.chars += len(batch)
                    yield batch
                    n = min(2 * n, MAX_BATCH)
            finally:
                self.stats.generating -= 1


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_events(gen: Generation, request: Request | None, meta: dict[str, Any]) -> AsyncIterator[str]:
    """The SSE body of a streamed generation: "start", then "chars" events, then "done"."""
    yield sse("start", meta)
    count = 0
    async for batch in gen.batches(request):
        count += len(batch)
        yield sse("chars", [record_json(r) for r in batch])
    yield sse("done", {"chars": count})


def read_inside(ckpt: Checkpoint, req: InsideRequest) -> dict[str, Any]:
    """The Inside analysis of the request's text, or of its slice of the run's validation split."""
    if (req.text is None) == (req.split is None):
        raise inside_lib.InsideError("give either a text or split \"val\" (with start and length)")
    text = req.text if req.text is not None else inside_lib.validation_text(ckpt, req.length, req.start)
    return inside_lib.analyze(ckpt.model_params, ckpt.vocab, text)


def create_app(paths: Sequence[str | Path]) -> FastAPI:
    """The app serving the runs and checkpoints at `paths` (see `charnn.web.runs`)."""
    registry = Registry(paths)
    limit = asyncio.Semaphore(MAX_CONCURRENT)
    app = FastAPI(title="charnn", summary="Write with a character RNN, look inside it, watch it train.",
                  max_body_size=MAX_BODY_BYTES, docs_url=None, redoc_url=None)   # their pages load from a CDN
    app.state.registry = registry
    app.state.stats = stats = Stats()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _one_line(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    for kind, status in ((sample.SampleError, 400), (VocabError, 400), (DataError, 400), (inside_lib.InsideError, 400),
                         (UnknownRun, 404), (CheckpointError, 409)):
        app.add_exception_handler(kind, lambda request, exc, status=status: _error(status, exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    # -- pages -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def _index() -> RedirectResponse:
        return RedirectResponse("/write")

    for page in PAGES:
        app.add_api_route(f"/{page}", lambda page=page: FileResponse(STATIC / f"{page}.html"),
                          methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/shared", StaticFiles(directory=SHARED), name="shared")

    # -- the API ---------------------------------------------------------------------------
    @app.get("/api/models", summary="The served models (runs with a checkpoint)")
    async def models() -> list[dict[str, Any]]:
        return await run_in_threadpool(registry.models)

    def prepare(req: GenerateRequest) -> tuple[Iterator[sample.Record], dict[str, Any]]:
        if req.length > MAX_LENGTH:
            raise sample.SampleError(f"length must be at most {MAX_LENGTH}, got {req.length}")
        sample.check_options(length=req.length, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p)
        ckpt = registry.load(req.model)
        prompt = req.prompt
        if ckpt.config.byte_level:   # as in `charnn sample`: the prompt stands for its UTF-8 bytes
            prompt = prompt.encode("utf-8", "surrogateescape").decode("latin-1")
        unknown = ckpt.vocab.unknown(prompt)
        if unknown:
            raise VocabError("prompt has character(s) not in the model's vocabulary: "
                             + ", ".join(map(repr, unknown[:10])))
        seed = secrets.randbits(63) if req.seed is None else req.seed
        records = sample.generate_records(ckpt.model_params, ckpt.vocab, prompt, req.length,
                                          temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, seed=seed)
        meta = {"model": req.model, "prompt": req.prompt, "length": req.length, "temperature": req.temperature,
                "top_k": req.top_k, "top_p": req.top_p, "seed": seed}
        return records, meta

    @app.post("/api/generate", summary="Continue a prompt, with each character's probability and top 5")
    async def generate(req: GenerateRequest, request: Request) -> Any:
        records, meta = await run_in_threadpool(prepare, req)
        gen = Generation(records, limit, stats)
        if req.stream:
            return StreamingResponse(stream_events(gen, request, meta), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        chars = [record_json(r) async for batch in gen.batches() for r in batch]
        return {**meta, "text": "".join(c["char"] for c in chars), "chars": chars}

    @app.post("/api/inside", summary="Read a text and show the network's states, surprise, units and gates")
    async def inside(req: InsideRequest) -> dict[str, Any]:
        ckpt = await run_in_threadpool(registry.load, req.model)
        async with limit:
            return await run_in_threadpool(read_inside, ckpt, req)

    @app.get("/api/status", summary="Generations running now and characters generated since the start")
    async def status() -> dict[str, int]:
        return {"generating": stats.generating, "chars_generated": stats.chars}

    @app.get("/api/runs", summary="The served runs, including any training now")
    async def runs() -> list[dict[str, Any]]:
        return await run_in_threadpool(lambda: [r.describe() for r in registry.runs()])

    @app.get("/api/runs/{run_id}/metrics", summary="metrics.jsonl rows after a byte offset")
    async def metrics(run_id: str, offset: int = Query(0, ge=0)) -> dict[str, Any]:
        run = registry.run(_check_run_id(run_id))
        return await run_in_threadpool(run.metrics, offset)

    @app.get("/api/runs/{run_id}/samples", summary="The samples written at each epoch end")
    async def samples(run_id: str) -> list[dict[str, str]]:
        run = registry.run(_check_run_id(run_id))
        return await run_in_threadpool(run.samples)

    return app
