"""Running ``mathlora serve``'s app under uvicorn: listen, say where once ready, stop cleanly on a signal.

The socket is bound here (``--port 0`` gets a free port, printed in the ready line). On SIGTERM or SIGINT
uvicorn stops accepting connections, lets requests in flight finish (``GRACE_SECONDS`` at most), runs the
app's shutdown (the engine stops) and returns; the command then exits 0.
"""

from __future__ import annotations

import signal
import socket

from mathlora.errors import MathloraError

GRACE_SECONDS = 30


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


def serve_app(build, host: str, port: int, ready) -> int:
    """Serve ``build(on_ready)`` (an ASGI app) until a signal; ``ready(port)`` is called once it answers."""
    import uvicorn

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    app = build(lambda: ready(bound))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=GRACE_SECONDS)
    server = uvicorn.Server(config)
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
