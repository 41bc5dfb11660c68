"""Where ``mathlora publish`` writes: ``Remote``, a destination folder on an fsspec filesystem (S3 with its
sha256 tag, ``file://`` and plain paths through a temporary name), ``HubRemote``, a Hugging Face Hub model
repository (``hf://user/repo``, through ``huggingface_hub``), ``destination`` (which one a URL names), and
``scrub``, which keeps credential values out of every message."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
import tempfile

from mathlora.errors import MathloraError
from mathlora.modeling.openai_client import scrub as scrub_secrets
from mathlora.run_dir.records import JsonProblem, parse_json

if TYPE_CHECKING:
    from mathlora.export.publish import Item

CHUNK = 8 << 20
S3_HINT = "pip install 'mathlora[s3]'"


# -- credentials never leave the process ---------------------------------------------------------------------
_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY|API_KEY|CREDENTIAL)", re.I)
_SIGNED = re.compile(r"(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s\"']+", re.I)


_KNOWN_SECRETS: set[str] = set()  # credentials read from elsewhere than the environment (the Hub's saved login)


def _secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 6}
    values |= {v for v in _KNOWN_SECRETS if len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without credential values: the one scrub (``mathlora.modeling.openai_client.scrub``: URL user
    info, auth headers, key fields) given the environment's secrets, plus signed-request fields."""
    return _SIGNED.sub(r"\1***", scrub_secrets(str(text), *_secret_values()))


def glob_escape(path: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", path)


def destination(url: str, endpoint_url: str | None = None, *, private: bool = False) -> "Remote | HubRemote":
    """The destination ``url`` names: ``hf://`` a Hub repository, anything else an fsspec folder."""
    if url.lower().startswith("hf://"):
        if endpoint_url:
            raise MathloraError("--endpoint-url is for s3:// destinations (the Hub's address is HF_ENDPOINT)")
        return HubRemote(url, private=private)
    return Remote(url, endpoint_url)


class Remote:
    """A destination folder on an fsspec filesystem."""

    batched = False  # every put is stored at once (HubRemote: at the next commit)

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

    def commit(self, message: str) -> None:
        """Nothing to do: every ``put`` and ``remove`` is stored when it is made."""


# -- the Hugging Face Hub ------------------------------------------------------------------------------------
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_hub_url(url: str) -> tuple[str, str]:
    """``hf://user/repo[/folder]`` -> ("user/repo", "folder" or ""); one-line errors for anything else."""
    rest = url[len("hf://"):].strip("/")
    parts = [p for p in rest.split("/") if p]
    if parts and parts[0] in ("datasets", "spaces"):
        raise MathloraError(f"{url}: mathlora publishes to a model repository (hf://user/repo), not {parts[0]}")
    if "@" in rest or "?" in rest or "#" in rest:
        raise MathloraError(f"{url}: a revision or query is not supported (hf://user/repo[/folder], main branch)")
    if len(parts) < 2 or not all(_REPO_NAME.match(p) for p in parts[:2]) or ".." in parts \
            or any(p.startswith(".") for p in parts):
        raise MathloraError(f"{url}: expected hf://user/repo (a Hub user or organisation and a repository name)")
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def hub_api():
    """The ``huggingface_hub.HfApi`` publishing uses (the token from ``HF_TOKEN`` or ``hf auth login``)."""
    from huggingface_hub import HfApi

    return HfApi()


def _discard_download(path: Path) -> None:
    """Remove a file ``hf_hub_download`` fetched (its cache's link and the blob behind it)."""
    real = path.resolve()
    path.unlink(missing_ok=True)
    real.unlink(missing_ok=True)


class HubRemote:
    """A Hugging Face Hub model repository (``hf://user/repo[/folder]``) with the ``Remote`` interface.

    Writes are batched: ``put`` and ``remove`` collect operations that ``commit`` sends as one Hub commit
    (``HfApi.create_commit``: atomic, so a killed upload leaves no partial file). Reads see the repository's
    main branch (after a commit: that commit). Sizes and sha256 come from the repository's tree: a file stored
    in LFS/Xet carries its sha256 (the LFS object id, which the Hub checks against the bytes on upload); a
    regular file is downloaded and hashed. The repository is created (``create_repo``, ``exist_ok``, private
    when asked) on first use; the token is the usual one (``HF_TOKEN``, ``hf auth login``) and is scrubbed
    from every message.
    """

    s3 = False
    batched = True

    def __init__(self, url: str, *, private: bool = False, api=None):
        self.url = url
        self.repo_id, self.prefix = parse_hub_url(url)
        self.api = api if api is not None else hub_api()
        token = self._token()
        if token:
            _KNOWN_SECRETS.add(token)
        elif api is None:
            raise MathloraError("publishing to hf:// needs a Hugging Face token with write access: set HF_TOKEN or "
                                "run `hf auth login`")
        self.private = private
        self.api.create_repo(self.repo_id, repo_type="model", private=private, exist_ok=True)
        self.revision: str | None = None  # the commit reads refer to (None: the main branch)
        self._tree: dict | None = None
        self._ops: list = []
        self._downloads = None  # a TemporaryDirectory for hf_hub_download's cache, removed with this object

    def _token(self) -> str | None:
        token = getattr(self.api, "token", None)
        if token:
            return str(token)
        from huggingface_hub import get_token

        return get_token()

    def full(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _files(self) -> dict:
        """path in the repository -> RepoFile, for the current revision (listed once per revision)."""
        if self._tree is None:
            from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

            tree: dict = {}
            try:
                entries = self.api.list_repo_tree(self.repo_id, path_in_repo=self.prefix or None, recursive=True,
                                                  repo_type="model", revision=self.revision)
                for entry in entries:
                    if hasattr(entry, "blob_id") and hasattr(entry, "size"):  # a RepoFile (not a folder)
                        tree[entry.path] = entry
            except (EntryNotFoundError, RepositoryNotFoundError):  # an empty repository or folder
                pass
            self._tree = tree
        return self._tree

    def size(self, rel: str) -> int | None:
        entry = self._files().get(self.full(rel))
        return int(entry.size) if entry is not None else None

    def recorded_sha256(self, rel: str) -> str | None:
        entry = self._files().get(self.full(rel))
        lfs = getattr(entry, "lfs", None) if entry is not None else None
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        return str(sha) if sha else None

    def _download(self, rel: str) -> Path:
        if self._downloads is None:  # the cache's folders (refs, locks) go with it, not only the files
            self._downloads = tempfile.TemporaryDirectory(prefix="mathlora-hub-")
        return Path(self.api.hf_hub_download(self.repo_id, self.full(rel), repo_type="model",
                                             revision=self.revision, cache_dir=self._downloads.name))

    def content(self, rel: str) -> tuple[int, str]:
        """(size, sha256) read back: downloaded and hashed (an LFS file by its recorded sha256: ``verified``)."""
        path = self._download(rel)
        h = hashlib.sha256()
        n = 0
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
                n += len(block)
        _discard_download(path)  # no copy of the repository piles up on disk
        return n, h.hexdigest()

    def verified(self, rel: str, *, read_all: bool = False) -> tuple[int | None, str | None]:
        """(size, sha256) of ``rel`` as stored: an LFS file's from the Hub's record of its object (unless
        ``read_all``), any other file downloaded and hashed."""
        recorded = None if read_all else self.recorded_sha256(rel)
        if recorded is not None:
            return self.size(rel), recorded
        if self.size(rel) is None:
            return None, None
        return self.content(rel)

    def put(self, item: Item) -> None:
        from huggingface_hub import CommitOperationAdd

        source = item.data if item.data is not None else str(item.source)
        self._ops = [op for op in self._ops if getattr(op, "path_in_repo", None) != self.full(item.path)]
        self._ops.append(CommitOperationAdd(path_in_repo=self.full(item.path), path_or_fileobj=source))

    def remove(self, rel: str) -> None:
        from huggingface_hub import CommitOperationDelete

        if self.size(rel) is not None:
            self._ops.append(CommitOperationDelete(path_in_repo=self.full(rel)))

    def remove_partials(self, rel: str) -> None:
        """Nothing to do: a Hub commit is atomic, an interrupted one leaves nothing behind."""

    def read_json(self, rel: str) -> dict | None:
        if self.size(rel) is None:
            return None
        path = self._download(rel)
        try:
            data = parse_json(path.read_bytes())
        except (JsonProblem, UnicodeDecodeError):
            return None
        finally:
            _discard_download(path)
        return data if isinstance(data, dict) else None

    def commit(self, message: str) -> None:
        """Send the collected operations as one commit; later reads see that commit."""
        if not self._ops:
            return
        info = self.api.create_commit(self.repo_id, operations=self._ops, commit_message=message, repo_type="model")
        self._ops, self._tree = [], None
        self.revision = getattr(info, "oid", None) or None
