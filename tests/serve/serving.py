"""``mathlora serve``'s app under a real uvicorn on 127.0.0.1 (any free port), in a thread, for tests."""

from __future__ import annotations

import contextlib
import select
import threading
import time

from mathlora.serve.run import bind


@contextlib.contextmanager
def running(app):
    """The app served on loopback; yields its ``/v1`` base URL; shut down (lifespan included) on exit."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def read_line(proc, needle: str, seconds: float) -> str:
    """The first line of ``proc``'s standard output (a text pipe) that holds ``needle``, within ``seconds``; else
    an AssertionError with what it printed (its standard error too once it has exited)."""
    deadline, seen = time.monotonic() + seconds, ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if needle in line:
                return line
            if not line and proc.poll() is not None:
                break
    err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else "(still running)"
    raise AssertionError(f"no {needle!r} from the server; it printed {seen!r} and {err!r}")
