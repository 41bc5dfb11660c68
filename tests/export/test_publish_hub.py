"""``mathlora publish --to hf://user/repo`` against an in-process stand-in for the Hub: a subclass of
``huggingface_hub.HfApi`` whose network methods keep the repository in memory. Every call is checked against
the real method's signature, and the operations are huggingface_hub's own ``CommitOperationAdd`` /
``CommitOperationDelete``; the listing is made of its own ``RepoFile`` objects (LFS for large and binary files,
as the Hub stores them)."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import RepoFile

from mathlora.app.cli import main
from mathlora.errors import MathloraError
from mathlora.export import store
from mathlora.export.publish import MANIFEST_NAME, hub_path, plan, publish_run
from mathlora.export.store import parse_hub_url

from .conftest import make_run

TOKEN = "hf_mathloraFakeToken0123456789abcdefXYZ"


class FakeHub(HfApi):
    """The Hub's model repositories in memory (path -> bytes per repo), one commit per ``create_commit``."""

    def __init__(self, token=TOKEN):
        super().__init__(token=token)
        self.repos: dict[str, dict[str, bytes]] = {}
        self.private: dict[str, bool] = {}
        self.commits: list[tuple[str, str, list[str]]] = []
        self.corrupt: set[str] = set()  # paths stored with other bytes than uploaded (a damaged upload)
        self.fail_commit = False

    @staticmethod
    def _check(name, *args, **kwargs):
        inspect.signature(getattr(HfApi, name)).bind(None, *args, **kwargs)  # the real method takes these

    def create_repo(self, *args, **kwargs):
        self._check("create_repo", *args, **kwargs)
        repo = args[0] if args else kwargs["repo_id"]
        if repo not in self.repos:
            self.repos[repo] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
            self.private[repo] = bool(kwargs.get("private"))
        return f"https://huggingface.co/{repo}"

    def list_repo_tree(self, *args, **kwargs):
        self._check("list_repo_tree", *args, **kwargs)
        repo, prefix = args[0] if args else kwargs["repo_id"], kwargs.get("path_in_repo") or ""
        for path, data in sorted(self.repos[repo].items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            lfs = path.endswith(".safetensors") or len(data) > 10_000
            yield RepoFile(path=path, size=len(data), oid=hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                           lfs={"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                           if lfs else None)

    def create_commit(self, *args, **kwargs):
        self._check("create_commit", *args, **kwargs)
        if self.fail_commit:
            raise OSError(f"connection reset while sending (token {TOKEN})")
        repo = args[0] if args else kwargs["repo_id"]
        files = self.repos[repo]
        paths = []
        for op in kwargs["operations"]:
            if isinstance(op, CommitOperationAdd):
                data = op.path_or_fileobj if isinstance(op.path_or_fileobj, bytes) else \
                    Path(op.path_or_fileobj).read_bytes()
                files[op.path_in_repo] = data + b"!" if op.path_in_repo in self.corrupt else data
            else:
                assert isinstance(op, CommitOperationDelete)
                files.pop(op.path_in_repo)
            paths.append(op.path_in_repo)
        self.commits.append((repo, kwargs["commit_message"], paths))

        class Info:
            oid = f"{len(self.commits):040x}"
        return Info()

    def hf_hub_download(self, *args, **kwargs):
        self._check("hf_hub_download", *args, **kwargs)
        repo, filename = args[0], args[1]
        out = Path(kwargs["cache_dir"]) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(self.repos[repo][filename])
        return str(out)


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub()
    monkeypatch.setattr(store, "hub_api", lambda: fake)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return fake


def _run_with_cards(root: Path) -> Path:
    from mathlora.export.model_card import write_cards

    make_run(root)
    (root / "train" / "adapter" / "README.md").unlink()
    write_cards(root)
    return root


def test_the_hub_layout_puts_the_adapter_at_the_top(tmp_path):
    root = _run_with_cards(tmp_path / "run")
    paths = {i.path for i in plan(root, hub=True)}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "merged/config.json", "merged/README.md",
            "checkpoints/step-2/adapter_config.json", "checkpoints/step-4/merged/model.safetensors",
            "report/report.html", "report/plots/loss.png"} <= paths
    assert not any(p.startswith("train/") for p in paths)
    assert hub_path("train/adapter/tokenizer.json") == "tokenizer.json"
    # the cards written in the run folder are published as they are (not made again)
    item = next(i for i in plan(root, hub=True) if i.path == "README.md")
    assert item.source == root / "train" / "adapter" / "README.md"


def test_publish_to_the_hub_commits_verifies_and_reruns_without_a_commit(tmp_path, hub, capsys):
    root = _run_with_cards(tmp_path / "run")
    counts = publish_run(root, "hf://someone/math-lora", private=True)
    files = hub.repos["someone/math-lora"]
    assert hub.private["someone/math-lora"] is True and counts["uploaded"] == counts["files"]
    assert len(hub.commits) == 2 and hub.commits[1][2] == [MANIFEST_NAME]  # the files, then complete
    assert files["README.md"] == (root / "train" / "adapter" / "README.md").read_bytes()
    assert files["merged/model.safetensors"] == (root / "merged" / "model.safetensors").read_bytes()
    manifest = json.loads(files[MANIFEST_NAME])
    assert manifest["complete"] is True and manifest["destination"] == "hf://someone/math-lora"
    assert {f["path"] for f in manifest["files"]} == set(files) - {MANIFEST_NAME, ".gitattributes"}

    capsys.readouterr()
    again = publish_run(root, "hf://someone/math-lora")
    assert again["uploaded"] == 0 and again["skipped"] == again["files"] and len(hub.commits) == 2
    assert "nothing to upload" in capsys.readouterr().out

    (root / "eval" / "tuned" / "math.json").write_text(json.dumps({"accuracy": 0.75, "count": 16}))
    from mathlora.export.model_card import write_cards

    write_cards(root)  # new scores: both cards change, nothing else
    third = publish_run(root, "hf://someone/math-lora")
    assert third["uploaded"] == 2 and sorted(hub.commits[2][2]) == sorted(["README.md", "merged/README.md",
                                                                          MANIFEST_NAME])


def test_publish_cli_private_flag_reaches_create_repo(tmp_path, hub):
    root = _run_with_cards(tmp_path / "run")
    assert main(["publish", "--run", str(root), "--to", "hf://someone/private-one", "--private"]) == 0
    assert main(["publish", "--run", str(root), "--to", "hf://someone/public-one"]) == 0
    assert hub.private == {"someone/private-one": True, "someone/public-one": False}


def test_a_damaged_upload_is_caught_and_the_manifest_stays_incomplete(tmp_path, hub):
    root = _run_with_cards(tmp_path / "run")
    hub.corrupt = {"merged/config.json"}  # a regular file: downloaded and hashed
    with pytest.raises(MathloraError, match="verification failed .* merged/config.json"):
        publish_run(root, "hf://someone/repo")
    assert json.loads(hub.repos["someone/repo"][MANIFEST_NAME])["complete"] is False
    hub.corrupt = set()
    assert publish_run(root, "hf://someone/repo")["replaced"] == 1  # the rerun repairs it
    assert json.loads(hub.repos["someone/repo"][MANIFEST_NAME])["complete"] is True


def test_hub_refusals_and_errors_say_one_line_without_the_token(tmp_path, hub, monkeypatch, capsys):
    root = _run_with_cards(tmp_path / "run")
    other = _run_with_cards(tmp_path / "other")
    publish_run(other, "hf://someone/taken")
    with pytest.raises(MathloraError, match="another run's publication"):
        publish_run(root, "hf://someone/taken")
    assert publish_run(root, "hf://someone/taken", replace=True)["files"] > 0
    hub.create_repo("someone/users-own")
    hub.repos["someone/users-own"]["README.md"] = b"# my model\n"
    with pytest.raises(MathloraError, match="did not publish"):
        publish_run(root, "hf://someone/users-own")
    hub.fail_commit = True
    with pytest.raises(MathloraError) as err:
        publish_run(root, "hf://someone/new")
    assert "failed at the upload" in str(err.value) and TOKEN not in str(err.value) and "***" in str(err.value)
    for url, match in (("hf://someone", "expected hf://user/repo"), ("hf://datasets/a/b", "model repository"),
                       ("hf://a/b@dev", "revision")):
        with pytest.raises(MathloraError, match=match):
            parse_hub_url(url)
    assert parse_hub_url("hf://a/b/runs/x") == ("a/b", "runs/x")


def test_no_token_is_one_line(tmp_path, monkeypatch, capsys):
    root = _run_with_cards(tmp_path / "run")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved login either
    monkeypatch.setattr(store, "hub_api", lambda: FakeHub(token=None))
    monkeypatch.setattr(store.HubRemote, "_token", lambda self: None)
    rc = main(["publish", "--run", str(root), "--to", "hf://someone/repo"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: publishing to hf:// needs a Hugging Face token")
