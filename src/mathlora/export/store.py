"""Where ``mathlora publish`` writes: ``Remote``, a destination folder on an fsspec filesystem (S3 with its
sha256 tag, ``file://`` and plain paths through a temporary name), and ``scrub``, which keeps credential values
out of every message."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mathlora.errors import MathloraError
from mathlora.records import JsonProblem, parse_json

if TYPE_CHECKING:
    from mathlora.export.publish import Item

CHUNK = 8 << 20
S3_HINT = "pip install 'mathlora[s3]'"


# -- credentials never leave the process ---------------------------------------------------------------------
_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY|API_KEY|CREDENTIAL)", re.I)
_USERINFO = re.compile(r"(?<=://)[^@\s]*@")
_SIGNED = re.compile(r"(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s\"']+", re.I)


def _secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without credential values (environment secrets, URL user info, signed-request fields)."""
    from mathlora.openai_client import scrub as scrub_key

    text = str(text)
    for value in _secret_values():  # as written and in every escaped form (a value ending in \r)
        text = scrub_key(text, value)
    text = _USERINFO.sub("***@", text)
    return _SIGNED.sub(r"\1***", text)


def glob_escape(path: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", path)


class Remote:
    """A destination folder on an fsspec filesystem."""

    def __init__(self, url: str, endpoint_url: str | None = None):
        parts = urlsplit(url)
        if parts.username or parts.password or ("@" in url and parts.scheme.lower() in ("s3", "s3a")) \
                or ":" in (parts.netloc if parts.scheme.lower() in ("s3", "s3a") else ""):
            raise MathloraError("the publish URL must not carry credentials; use the store's standard "
                                "environment variables or profile")
        scheme = parts.scheme.lower()
        self.url = url
        if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
            import fsspec

            if scheme == "file" and parts.netloc not in ("", "localhost"):
                raise MathloraError(f"{url}: a file:// URL with a host ({parts.netloc}) is not supported; "
                                    "mount the share and give file:///path (three slashes) or a plain path")
            if endpoint_url:
                raise MathloraError("--endpoint-url is for s3:// destinations")
            local = parts.path if scheme == "file" else url
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(local).expanduser().resolve())
            self.s3 = False
        elif scheme in ("s3", "s3a"):
            try:
                import s3fs
            except ImportError:
                raise MathloraError(f"publishing to s3:// needs s3fs, which is not installed: {S3_HINT}") from None
            if not parts.netloc:
                raise MathloraError(f"{url}: no bucket (expected s3://bucket/prefix)")
            options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
            if endpoint_url:
                options["endpoint_url"] = endpoint_url
            self.fs = s3fs.S3FileSystem(**options)
            self.root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
            self.s3 = True
        else:
            import fsspec

            if endpoint_url:
                raise MathloraError("--endpoint-url is for s3:// destinations")
            try:
                self.fs, self.root = fsspec.core.url_to_fs(url)
            except (ImportError, ValueError) as e:
                raise MathloraError(f"cannot publish to {scrub(url)}: {scrub(e)}") from None
            self.root = self.root.rstrip("/")
            self.s3 = False

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def size(self, rel: str) -> int | None:
        try:
            info = self.fs.info(self.full(rel))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type", "file") == "file" else None

    def recorded_sha256(self, rel: str) -> str | None:
        if not self.s3:
            return None
        meta = self.fs.metadata(self.full(rel))
        return {k.lower(): v for k, v in meta.items()}.get("sha256")

    def content(self, rel: str) -> tuple[int, str]:
        h = hashlib.sha256()
        n = 0
        with self.fs.open(self.full(rel), "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
                n += len(block)
        return n, h.hexdigest()

    def put(self, item: Item) -> None:
        target = self.full(item.path)
        if self.s3:  # one PUT (or one completed multipart upload): content and its sha256 tag together
            kwargs = {"Metadata": {"sha256": item.sha256}}
            if item.data is not None:
                self.fs.pipe_file(target, item.data, **kwargs)
            else:
                self.fs.put_file(str(item.source), target, **kwargs)
            return
        parent = target.rsplit("/", 1)[0]
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{target}.partial-{os.getpid()}"
        try:
            if item.data is not None:
                self.fs.pipe_file(tmp, item.data)
            else:
                self.fs.put_file(str(item.source), tmp)
            self.fs.mv(tmp, target)
        except BaseException:
            try:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
            except Exception:  # best effort: the original error matters
                pass
            raise

    def remove(self, rel: str) -> None:
        if self.size(rel) is not None:
            self.fs.rm(self.full(rel))

    def remove_partials(self, rel: str) -> None:
        """Remove the ``<name>.partial-<pid>`` leftovers of killed uploads of ``rel`` (names made here only)."""
        if not self.s3:
            for leftover in self.fs.glob(glob_escape(self.full(rel)) + ".partial-*"):
                if re.fullmatch(r".*\.partial-\d+", leftover):
                    self.fs.rm(leftover)

    def read_json(self, rel: str) -> dict | None:
        try:
            with self.fs.open(self.full(rel), "rb") as fh:
                return parse_json(fh.read())
        except FileNotFoundError:
            return None
        except (JsonProblem, UnicodeDecodeError):
            return None
