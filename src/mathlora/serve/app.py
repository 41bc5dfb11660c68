"""``mathlora serve``'s ASGI app (Starlette): ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``.

A client sends only the problem: the app renders the run's prompt template around it (a completions prompt
or the last user message of a chat) and the engine (:mod:`mathlora.serve.engines`) decodes it, with the
calculator when on. Each choice carries, beside OpenAI's fields, the final ``answer`` read from the worked
solution and the ``calculator``'s counts. ``stream: true`` is answered as server-sent events (the decoded
text in one chunk, then ``[DONE]``). Errors are OpenAI's error objects with one line saying why: 400 for a
bad request (or one the upstream server refused), 404 for an unknown model or path, 405, 413 for a body too
large, 502 when the upstream server fails, 500 for anything unexpected (never a traceback).
"""

from __future__ import annotations

import contextlib
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mathlora.serve import protocol
from mathlora.serve.engines import UpstreamError
from mathlora.serve.protocol import ChatRequest, CompletionRequest, Limits, RequestError


def _error(status: int, message: str, **kw) -> JSONResponse:
    return JSONResponse(RequestError(status, message, **kw).body(), status_code=status)


def build_app(engine, *, served: str, template: str, scope: str, limits: Limits = Limits(),
              on_ready=None) -> Starlette:
    """The app over ``engine``; ``served`` is the model name clients use, ``scope`` where answers are read."""
    from mathlora.templates import render_prompt

    async def read(request: Request, model):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.body_bytes:
            raise RequestError(413, f"request body over {limits.body_bytes} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limits.body_bytes:
                raise RequestError(413, f"request body over {limits.body_bytes} bytes")
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

    started = int(time.time())
    routes = [Route("/v1/models", guarded(models), methods=["GET"]),
              Route("/v1/completions", guarded(completions), methods=["POST"]),
              Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
              Route("/health", guarded(health), methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


def guarded(handler):
    """``handler`` whose failures are error replies: a RequestError its status, the upstream's 502, anything
    else 500 with one line (no traceback reaches the client or the log)."""
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as e:
            return JSONResponse(e.body(), status_code=e.status)
        except UpstreamError as e:
            return _error(e.status, str(e))
        except Exception as e:  # noqa: BLE001 - a server answers, whatever failed
            return _error(500, f"internal error: {type(e).__name__}: {e}".splitlines()[0])
    return run
