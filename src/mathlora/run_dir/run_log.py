"""``run.log``: the lines a run printed, stdout and stderr teed into the run folder (progress bars left out)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mathlora.errors import MathloraError


class _LineSink:
    """Whole lines to the log file; a line holding a carriage return (a progress bar's redraw) is left out."""

    def __init__(self, fh):
        self.fh = fh
        self.partial = ""

    def write(self, text: str) -> None:
        self.partial += text
        if "\n" not in self.partial:
            if len(self.partial) > 1 << 16:  # a bar redrawn for hours without a newline
                self.partial = self.partial[-(1 << 12):]
            return
        *lines, self.partial = self.partial.split("\n")
        kept = [line for line in lines if "\r" not in line]
        if kept:
            try:
                self.fh.write("".join(line + "\n" for line in kept))
                self.fh.flush()
            except (OSError, ValueError):  # a full disk or a closed log never stops the run
                pass

    def close(self) -> None:
        if self.partial and "\r" not in self.partial:
            self.write("\n")
        self.partial = ""


class _Tee:
    """A text stream that writes through to ``stream`` and copies whole lines to a ``_LineSink``."""

    def __init__(self, stream, sink: _LineSink):
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        self._sink.write(text)
        return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str):  # fileno, isatty, encoding, buffer ...: the real stream's
        return getattr(self._stream, name)


class RunLog:
    """``run.log``: what ``with RunLog(path, title):`` prints on stdout and stderr is appended to ``path``, after a
    timestamped header, without progress bars; ``note`` adds a line to the log only. Leaving on an error adds
    its line (``error: ...``), unless it is one of ``expected`` (the caller notes those)."""

    def __init__(self, path: str | os.PathLike, title: str, *, expected: tuple[type[BaseException], ...] = ()):
        self.path = Path(path)
        self.title = title
        self.expected = expected
        self.fh = None

    def __enter__(self) -> "RunLog":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        gap = "\n" if self.path.is_file() and self.path.stat().st_size else ""
        self.fh = open(self.path, "a", encoding="utf-8", errors="replace")
        self.fh.write(f"{gap}=== {stamp} {self.title} (pid {os.getpid()}) ===\n")
        self.fh.flush()
        self.sinks = (_LineSink(self.fh), _LineSink(self.fh))
        self.saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Tee(sys.stdout, self.sinks[0]), _Tee(sys.stderr, self.sinks[1])
        return self

    def note(self, line: str) -> None:
        if self.fh is not None:
            self.fh.write(line.rstrip("\n") + "\n")
            self.fh.flush()

    def __exit__(self, kind, error, tb) -> None:
        sys.stdout, sys.stderr = self.saved
        for sink in self.sinks:
            sink.close()
        if isinstance(error, self.expected):
            pass
        elif isinstance(error, MathloraError):
            self.note(f"error: {error}")
        elif isinstance(error, KeyboardInterrupt):
            self.note("interrupted")
        elif error is not None and not isinstance(error, SystemExit):
            self.note(f"error: {type(error).__name__}: {error}")
        self.fh.close()
        self.fh = None
