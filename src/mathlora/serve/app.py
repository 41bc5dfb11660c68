"""``mathlora serve``'s ASGI app (Starlette): ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``.

A client sends only the problem: the app renders the run's prompt template around it (a completions prompt
or the last user message of a chat) and the engine (:mod:`mathlora.serve.engines`) decodes it, with the
calculator when on. Each choice carries, beside OpenAI's fields, the final ``answer`` read from the worked
solution and the ``calculator``'s counts. ``stream: true`` is answered as server-sent events (the decoded
text in one chunk, then ``[DONE]``). Errors are OpenAI's error objects with one line saying why: 400 for a
bad request (or one the upstream server refused), 401 without the server's API key (``api_key``: every
``/v1`` path needs ``Authorization: Bearer KEY``, compared in constant time), 404 for an unknown model or path,
405, 408 for a body not sent within ``Limits.body_seconds``, 413 for a body too large, 429/401/403 when the
upstream server says so, 502 when it fails, 503 while the server shuts down, 504 past the upstream deadline,
500 for anything unexpected (never a traceback).

Shutdown (:class:`Shutdown`): once it begins, new requests get 503; once its grace is over, every request
still unfinished is cancelled and answered 503 with an error object, and the engine drops its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mathlora.serve import protocol
from mathlora.serve.engines import Cancelled, UpstreamError
from mathlora.serve.protocol import ChatRequest, CompletionRequest, Limits, RequestError
from mathlora.modeling.templates import render_prompt


def _error(status: int, message: str, headers: dict | None = None, **kw) -> JSONResponse:
    return JSONResponse(RequestError(status, message, **kw).body(), status_code=status, headers=headers)


class Shutdown:
    """What a request handler needs to know of the server's shutdown: ``stopping`` (take no new work) and
    ``cancelled`` (the grace is over: give up what is unfinished). ``begin(grace)`` is called on the event
    loop when the server starts to shut down."""

    def __init__(self):
        self.stopping = False
        self._cancelled: asyncio.Event | None = None
        self.on_cancel = []  # callables run when the grace is over (the engine's cancel)

    @property
    def cancelled(self) -> asyncio.Event:
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
        return self._cancelled

    def begin(self, grace: float) -> None:
        if self.stopping:
            return
        self.stopping = True
        asyncio.get_running_loop().call_later(max(grace, 0), self.cancel)

    def cancel(self) -> None:
        self.stopping = True
        self.cancelled.set()
        for hook in self.on_cancel:
            hook()


def authorized(request: Request, api_key: str | None) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <api_key>`` (constant-time comparison)."""
    if not api_key:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                              api_key.encode("utf-8"))


def build_app(engine, *, served: str, template: str, scope: str, limits: Limits = Limits(),
              on_ready=None, api_key: str | None = None, shutdown: Shutdown | None = None) -> Starlette:
    """The app over ``engine``; ``served`` is the model name clients use, ``scope`` where answers are read;
    ``api_key``: the key clients must send (None: none needed); ``shutdown``: the server's (see the module
    docstring)."""

    shutdown = shutdown or Shutdown()
    if hasattr(engine, "cancel"):
        shutdown.on_cancel.append(engine.cancel)

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.body_bytes:
            raise RequestError(413, f"request body over {limits.body_bytes} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limits.body_bytes:
                raise RequestError(413, f"request body over {limits.body_bytes} bytes")
        return raw

    async def read(request: Request, model):
        try:
            async with asyncio.timeout(limits.body_seconds):  # a client sending its body a byte a second
                raw = await read_body(request)
        except TimeoutError:
            raise RequestError(408, f"request body not received within {limits.body_seconds:g}s") from None
        return protocol.validate(model, protocol.parse_body(raw, limits))

    async def decode(problems: list[str], budget: int):
        prompts = [render_prompt(template, p) for p in problems]
        for p in prompts:
            problem = engine.prompt_problem(p)
            if problem:
                raise RequestError(400, problem, "prompt")
        return await engine.complete(prompts, budget)

    def reply(body: dict, stream: bool) -> Response:
        if not stream:
            return JSONResponse(body)
        events = protocol.stream_events(body)

        async def send():
            for event in events:
                yield event
        return StreamingResponse(send(), media_type="text/event-stream")

    async def completions(request: Request) -> Response:
        req = await read(request, CompletionRequest)
        budget, stops = protocol.check_common(req, served, limits, req.max_tokens)
        gens = await decode(protocol.completion_prompts(req, limits), budget)
        return reply(protocol.completion_reply(gens, served, stops, scope), req.stream)

    async def chat(request: Request) -> Response:
        req = await read(request, ChatRequest)
        budget, stops = protocol.check_common(req, served, limits, req.max_completion_tokens or req.max_tokens)
        gens = await decode([protocol.chat_problem(req, limits)], budget)
        return reply(protocol.chat_reply(gens[0], served, stops, scope), req.stream)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": served, "object": "model", "created": started,
                                                         "owned_by": "mathlora"}]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await engine.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await engine.stop()

    def guarded(handler, *, open_: bool = False):
        """``handler`` behind the API key (unless ``open_``) and the shutdown, its failures error replies:
        a RequestError its status, the upstream's, 503 when cancelled by the shutdown, anything else 500 with
        one line (no traceback reaches the client or the log)."""
        async def run(request: Request) -> Response:
            if not open_ and not authorized(request, api_key):
                return _error(401, "no valid API key: send the server's key as 'Authorization: Bearer KEY'",
                              {"WWW-Authenticate": "Bearer"}, code="invalid_api_key")
            if shutdown.stopping:
                return _error(503, "the server is shutting down; not taking new requests",
                              {"Connection": "close"}, code="server_shutting_down")
            task = asyncio.ensure_future(answer(handler, request))
            stop = asyncio.ensure_future(shutdown.cancelled.wait())
            try:
                await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not task.done():
                    task.cancel()
            if not task.done() or task.cancelled():
                await asyncio.gather(task, return_exceptions=True)
                return _error(503, "the server shut down before this request was finished; send it again",
                              {"Connection": "close"}, code="server_shutting_down")
            return task.result()
        return run

    started = int(time.time())
    routes = [Route("/v1/models", guarded(models), methods=["GET"]),
              Route("/v1/completions", guarded(completions), methods=["POST"]),
              Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
              Route("/health", guarded(health, open_=True), methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


async def answer(handler, request: Request) -> Response:
    """``await handler(request)``, its failures error replies (see ``build_app``'s ``guarded``)."""
    try:
        return await handler(request)
    except RequestError as e:
        return JSONResponse(e.body(), status_code=e.status)
    except UpstreamError as e:
        headers = {"Retry-After": f"{e.retry_after:.0f}"} if e.retry_after is not None else None
        return _error(e.status, str(e), headers)
    except Cancelled:
        return _error(503, "the server shut down before this request was finished; send it again",
                      {"Connection": "close"}, code="server_shutting_down")
    except Exception as e:  # noqa: BLE001 - a server answers, whatever failed
        return _error(500, f"internal error: {type(e).__name__}: {e}".splitlines()[0])
