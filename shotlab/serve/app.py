"""The HTTP API (FastAPI on uvicorn). Its OpenAPI description is at /openapi.json; there is no
/docs page (FastAPI's loads Swagger UI from a CDN: an outbound request, and blank offline).

    POST /v1/moderate            one image or clip: raw bytes (Content-Type image/* or video/*)
                                 or multipart (field `file`); one comment (a text bundle): raw
                                 UTF-8 (Content-Type text/plain) or a multipart part; one post
                                 (an image+text bundle): multipart parts `image` and `text`;
                                 answers the decision
    POST /v1/moderate/batch      several as multipart parts (posts: image/text pairs, in
                                 order); one result per item
    GET  /v1/decisions/{id}      a stored decision, its explanation status and its verdict
    GET  /v1/review              the review queue (serve/review.py)
    POST /v1/decisions/{id}/review   a reviewer's verdict
    GET  /v2/health/live         the process answers (Open Inference Protocol)
    GET  /v2/health/ready        200 once the model has answered its warm-up run and while the
                                 decision store answers, else 503
    GET  /metrics                Prometheus text format

Refusals answer {"detail": "one line"}: 401 (API key), 413 (body, item count or a request's
pixels), 415 (media
type), 422 (empty, undecodable, a pixel bomb; a comment empty, over 5,000 characters or not
UTF-8; a post without its image or caption), 429 + Retry-After (queue full), 503 (timeout;
the MongoDB decision store not answering). Anything else is a 500 with one line.
"""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from shotlab.core.output import plural
from shotlab.serve.answers import public, read_body
from shotlab.serve.review import add_review_routes
from shotlab.serve.service import Refusal, Service, ServeOptions

MULTIPART = "multipart/form-data"
CLIENT_CLOSED = 499  # nginx's code for a request its client gave up before it was answered
ENDPOINTS = ("/v1/moderate", "/v1/moderate/batch", "/v1/decisions/{decision_id}",
             "/v1/review", "/v1/decisions/{decision_id}/review",
             "/v2/health/live", "/v2/health/ready", "/metrics")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def too_many_items(count: int | None, max_items: int) -> Refusal:
    """413 for a request over --max-items (`count` items, None when the parser stopped)."""
    sent = (f"more than {plural(max_items, 'item')} in one request" if count is None else
            f"{count} items in one request, over the limit of {max_items}")
    return Refusal(413, "too_large", f"{sent} (--max-items); send at most {max_items} a request")


def multipart_refusal(reason: str, max_items: int, max_fields: int) -> Refusal:
    """413 for a body over the parts' limits (too many parts, a form field over 1 MB), else 422.
    Form fields past `max_fields` are named as such: most may be fields the service does not
    read (one image with 80 of them was "more than 64 items")."""
    if reason.startswith("Too many fields"):
        return Refusal(413, "too_large", f"more than {max_fields} form fields in one request "
                       f"(those of at most {max_items} items, and {UNREAD_FIELDS} others that are "
                       f"not read, such as a user_id); send fewer fields")
    if reason.startswith("Too many"):
        return too_many_items(None, max_items)
    if "exceeded maximum size" in reason:
        return Refusal(413, "too_large", f"multipart body refused ({reason}); send a long text "
                       f"as a file part (curl -F file=@comment.txt)")
    return Refusal(422, "bad_input", f"multipart body refused ({reason}); send well-formed "
                   f"multipart/form-data with a named part per item (curl -F file=@photo.jpg)")


# Form fields a request may carry beyond its items' parts, which the service does not read (a
# client's user_id, thread...): the parser's limit leaves room for them.
UNREAD_FIELDS = 16


async def multipart_parts(request: Request, body: bytes, max_items: int, per_item: int) -> list:
    """The parts (serve.requests.Part) of a multipart body already read (and size-checked):
    file parts with their bytes, content type and file name; form fields as UTF-8 text/plain
    (Starlette decodes a field, falling back to Latin-1 for bytes that are not UTF-8). The
    parser stops past the parts `max_items` items can take (`per_item` each) of either sort;
    the items they make are counted by `bodies`."""
    from shotlab.serve.requests import Part

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    limit = max_items * per_item
    try:
        form = await Request(request.scope, replay).form(max_files=limit,
                                                         max_fields=limit + UNREAD_FIELDS)
    except (MultiPartException, HTTPException, ValueError) as exc:
        # Inside an app Starlette turns its MultiPartException into HTTPException(400);
        # python-multipart's own parse errors are ValueErrors.
        raise multipart_refusal(str(getattr(exc, "detail", exc)), max_items,
                                limit + UNREAD_FIELDS) from None
    try:
        return [Part(name, await value.read(),
                     (value.content_type or "").split(";")[0].strip().lower(), value.filename)
                if isinstance(value, UploadFile) else
                Part(name, value.encode("utf-8"), "text/plain", field=True)
                for name, value in form.multi_items()]
    finally:
        await form.close()


async def bodies(service: Service, request: Request, *, batch: bool) -> list[tuple]:
    """(body, request kind) of each item a request carries: raw bytes (one: an image, a clip
    sent as video/*, a comment sent as text/plain), or a multipart body's parts as the bundle's
    kinds read them (`RequestKind.from_parts`: for images, clips and comments each part by its
    own content type or, sent as octet-stream, its file name's suffix, else the bundle's own
    kind; for posts, `image` and `text` parts in pairs)."""
    from shotlab.core.errors import InputError
    from shotlab.serve.requests import no_item

    kind = media_type(request) or "application/octet-stream"
    read = service.kind_for(kind) if kind != MULTIPART else None
    if kind != MULTIPART and (batch or read is None):
        raw = service.media_types()
        raise Refusal(415, "media_type", f"Content-Type {kind} is not accepted here; send "
                      f"{MULTIPART}" + ("" if batch or not raw else f" or the raw bytes as {raw}"))
    body = await read_body(request, service.options.max_body_bytes)
    if kind != MULTIPART:
        return [(body, read)]
    max_items = service.options.max_items
    parts = await multipart_parts(request, body, max_items, max(k.parts for k in service.kinds))
    try:
        items = service.kinds[0].from_parts(parts, service.kinds)
    except InputError as exc:  # parts that make no item (a post without its caption)
        raise Refusal(422, "bad_input", str(exc)) from None
    if not items:
        raise Refusal(422, "bad_input", no_item(parts, service.kinds))
    if not batch and len(items) > 1:
        raise Refusal(422, "bad_input", f"{len(items)} items sent to /v1/moderate; send "
                      f"one, or use /v1/moderate/batch")
    if len(items) > max_items:  # files and form fields together (comments: both are items)
        raise too_many_items(len(items), max_items)
    return items


def endpoint_of(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if path in ENDPOINTS else "other"  # bounded label values


def failure_status(exc: Exception) -> int:
    """The status an exception no route handled is answered with (`create_app`'s handler): 503
    when the decision store stopped answering, else 500."""
    from shotlab.core.database import lost

    return 503 if lost(exc) is not None else 500


class MetricsMiddleware:
    """Counts every answered request by endpoint and the status code its client gets, and its
    latency. An exception raised through it is answered outside it (Starlette's
    ServerErrorMiddleware runs the app's Exception handler), so its code is `failure_status`'s."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [None]

        async def capture(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:
            if status == [None]:  # no answer yet: the app's exception handler gives it
                status[0] = failure_status(exc)
            raise
        finally:
            endpoint = endpoint_of(scope)
            self.metrics.requests.labels(endpoint, str(status[0] or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def authorizer(digest: str | None):
    """A dependency refusing requests without `Authorization: Bearer <key>`: the token's sha256
    compared with the key's (`digest`) in constant time."""
    from shotlab.serve.service import key_sha256

    expected = digest.encode() if digest else None

    def authorize(request: Request) -> None:
        if expected is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                key_sha256(token.strip()).encode(), expected):
            raise Refusal(401, "unauthorized", "missing or wrong API key; send the header "
                          "'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})

    return authorize


def create_app(options: ServeOptions, **service_args) -> FastAPI:
    """The one app: uvicorn runs it in the embedded server, Ray Serve in each replica
    (serve/ray_serve.py passes its batcher through `service_args`)."""
    service = Service(options, **service_args)

    @asynccontextmanager
    async def lifespan(app):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="shotlab moderation service", lifespan=lifespan,
                  summary=f"Decisions from the bundle {service.bundle.origin.name}",
                  docs_url=None, redoc_url=None)  # both load their scripts from a CDN
    app.state.service = service
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal):
        service.metrics.rejections.labels(exc.reason).inc()
        return JSONResponse({"detail": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def hung_up(request: Request, exc: ClientDisconnect):
        """The client closed the connection before sending all its body: nobody is waiting
        for an answer and nothing failed here; counted as nginx counts it, 499, not a 500."""
        service.metrics.rejections.labels("client_disconnected").inc()
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        """A store that stopped answering is a 503 with one line (a load balancer retries
        elsewhere), not a bare 500; anything else is a 500 with one line, traceback logged."""
        from shotlab.serve.service import STORE_DOWN

        if failure_status(exc) == 503:
            service.metrics.rejections.labels("store_down").inc()
            return JSONResponse({"detail": STORE_DOWN}, 503, headers={"Retry-After": "5"})
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the "
                                       f"server's log"}, 500)

    guarded = [Depends(authorizer(options.key_digest()))]
    add_moderation_routes(app, service, guarded)
    add_review_routes(app, service, guarded)
    add_operation_routes(app, service, guarded)
    return app


def add_moderation_routes(app: FastAPI, service: Service, guarded: list) -> None:
    timeout_s = service.options.timeout_ms / 1000

    @app.post("/v1/moderate", dependencies=guarded)
    async def moderate(request: Request):
        """One image, clip, comment or post (raw bytes, or multipart): its decision."""
        started = time.perf_counter()
        (body,) = await bodies(service, request, batch=False)
        (result,) = await service.decide([body], timeout_s)
        if isinstance(result, Refusal):
            raise result
        record, stored = result
        return public(record, service.explanation_status(record, stored), started,
                      cached=stored is not None)

    @app.post("/v1/moderate/batch", dependencies=guarded)
    async def moderate_batch(request: Request):
        """Several items as multipart parts: one result per item, in order."""
        started = time.perf_counter()
        results = await service.decide(await bodies(service, request, batch=True), timeout_s)
        return {"results": [batch_item(service, i, r) for i, r in enumerate(results)],
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}

    @app.get("/v1/decisions/{decision_id}", dependencies=guarded)
    async def decision(decision_id: str):
        """A stored decision and its tier-1 explanation (status, method, target)."""
        from starlette.concurrency import run_in_threadpool

        found = await run_in_threadpool(service.store.get, decision_id)
        if found is None:
            return JSONResponse({"detail": f"no decision {decision_id} in this server's store"},
                                404)
        explanation = found["explanation"]
        # whatever the status: a failed tier 1 may have an appeal's maps since
        explanation["maps"] = await run_in_threadpool(stored_maps, service, decision_id)
        return {**public(found["record"], explanation), "review": found["review"]}


def batch_item(service: Service, index: int, result) -> dict:
    """One part's result in a batch answer: its decision, or its refusal (422)."""
    if isinstance(result, Refusal):
        service.metrics.rejections.labels(result.reason).inc()
        return {"index": index, "status": result.status, "detail": result.message}
    record, stored = result
    return {"index": index, "status": 200,
            **public(record, service.explanation_status(record, stored),
                     cached=stored is not None)}


def add_operation_routes(app: FastAPI, service: Service, guarded: list) -> None:
    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        """200 once warmed up and while the decision store answers, else 503 (and why)."""
        from starlette.concurrency import run_in_threadpool

        down = await run_in_threadpool(service.store_down) if service.ready else None
        if down:
            return JSONResponse({"ready": False, "detail": down}, 503)
        return JSONResponse({"ready": service.ready}, 200 if service.ready else 503)

    @app.get("/metrics", dependencies=guarded)
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def stored_maps(service: Service, decision_id: str) -> list[dict]:
    """The explanations this server stored for a decision: method, target class, map size,
    scores, time, and a comment's word scores, a post's split, a clip frame's time
    (`explain.summary`). Empty where it has no explanations.sqlite (a replica that explained
    nothing yet, or runs with --no-explain, on a shared MongoDB store): the maps are on the
    machine that computed them."""
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.summary import explanation_summary

    if not service.explanations_path.is_file():
        return []
    with ExplanationStore(service.explanations_path, readonly=True) as store:
        return [explanation_summary(e) for e in store.explanations(decision_id)]


def serve(options: ServeOptions) -> None:
    """Run the service in the foreground until interrupted (SIGINT / SIGTERM)."""
    import uvicorn

    from shotlab.export.runtime_choice import warn_regression

    app = create_app(options)
    warn_regression(app.state.service.bundle, options.runtime)
    uvicorn.run(app, host=options.host, port=options.port, access_log=options.access_log,
                log_level="info", timeout_graceful_shutdown=5)
