"""Running ``mathlora serve``'s app under uvicorn: listen, say where once ready, stop cleanly on a signal.

The socket is bound here (``--port 0`` gets a free port, printed in the ready line). On SIGTERM or SIGINT
uvicorn stops accepting connections and the app's :class:`~mathlora.serve.app.Shutdown` begins: new requests
get 503, requests in flight may finish within the grace (``GRACE_SECONDS`` unless told), then each unfinished
one is answered 503 with an OpenAI error object and the engine drops its batch; the app's shutdown runs (the
engine stops) and the command exits 0, without a traceback.

Bad clients are bounded (:class:`GuardedH11`): a connection must send a request's headers within
``HEADER_SECONDS`` of connecting or of its previous answer (idle keep-alive connections close after
``KEEP_ALIVE_SECONDS``), headers are at most ``HEADER_BYTES``, and at most ``MAX_CONNECTIONS`` connections are
open at once (more are closed at once; a request beyond ``MAX_IN_FLIGHT`` gets 503).
"""

from __future__ import annotations

import signal
import socket
import math

from mathlora.errors import MathloraError

GRACE_SECONDS = 30
HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
HEADER_BYTES = 64 * 1024
MAX_CONNECTIONS = 1000
MAX_IN_FLIGHT = 512


def guarded_protocol(header_seconds: float = HEADER_SECONDS, max_connections: int = MAX_CONNECTIONS):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections (uvicorn has neither:
    a client that connects and sends nothing, or a header a byte at a time, would hold a connection forever)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(_TOO_MANY)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_seconds, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request under way
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return GuardedH11


_BODY = (b'{"error": {"message": "too many connections; try again later", "type": "server_error", "param": null, '
         b'"code": "too_many_connections"}}')
_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
             b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a one-line error when the address cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise MathloraError(f"cannot listen on {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise MathloraError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def connection_cap(wanted: int = MAX_CONNECTIONS, spare: int = 128) -> int:
    """How many connections may be open at once: ``wanted``, with the soft file-descriptor limit raised
    toward the hard one for it, and never so many that the process runs out of descriptors (``spare`` left
    for model files, the upstream's connections and the log): past the cap a connection is closed at once,
    before the limit (where every accept would log an error)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + spare
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - spare))


def server_config(app, *, grace: float = GRACE_SECONDS, header_seconds: float = HEADER_SECONDS,
                  max_connections: int | None = None):
    """uvicorn's config for ``app`` with the limits of the module docstring."""

    import uvicorn

    max_connections = connection_cap() if max_connections is None else max_connections
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                          http=guarded_protocol(header_seconds, max_connections),
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=MAX_IN_FLIGHT + max_connections,
                          h11_max_incomplete_event_size=HEADER_BYTES,
                          # the app answers what is unfinished at the grace; uvicorn's own cancel is a backstop
                          timeout_graceful_shutdown=math.ceil(grace) + 10)


def stopping_server(config, shutdown, grace: float):
    """A uvicorn server that begins ``shutdown`` (the app's) as soon as it starts to shut down."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            shutdown.begin(grace)
            await super().shutdown(sockets)

    return Server(config)


def serve_app(build, host: str, port: int, ready, *, grace: float = GRACE_SECONDS) -> int:
    """Serve ``build(on_ready, shutdown)`` (an ASGI app) until a signal; ``ready(port)`` is called once it
    answers; ``grace``: seconds requests in flight may still take after the signal."""
    from mathlora.serve.app import Shutdown

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shutdown = Shutdown()
    app = build(lambda: ready(bound), shutdown)
    server = stopping_server(server_config(app, grace=grace), shutdown, grace)

    caught: list[int] = []
    # uvicorn re-raises the signal that stopped it once it has shut down; these handlers take it
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    if not server.started:
        raise MathloraError("the server did not start (see the message above)")
    print("stopped" + (f" ({signal.Signals(caught[0]).name})" if caught else ""), flush=True)
    return 0
