"""docs/ARCHITECTURE.md matches the code, and the stage modules keep their contract."""

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

from mathlora.config import Config
from mathlora.layout import EvalLayout, RunLayout
from mathlora.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")


def table(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_stage_table_names_every_stage_and_its_real_entry_function():
    rows = table("Stages")
    assert {name for row in rows for name in ticked(row[0])} == set(STAGES)
    for stage, entry, section, runtime, *_ in rows:
        module, _, name = ticked(entry)[0].rpartition(".")
        fn = getattr(importlib.import_module(module), name)
        params = list(inspect.signature(fn).parameters.values())
        position = 0
        if section != "—":
            expected = Config.model_fields[ticked(section)[0]].annotation.__name__
            assert params[0].annotation == expected, (stage, entry)
            position = 1
        if runtime.startswith("yes"):
            assert params[position].name == "runtime", (stage, entry)
        else:
            assert "runtime" not in [p.name for p in params], (stage, entry)


def test_the_run_folder_table_names_every_layout_path():
    named = {n.split("(")[0] for row in table("Run folder") for n in ticked(row[1])}
    public = {n for cls in (RunLayout, EvalLayout) for n in vars(cls) if not n.startswith("_") and n != "root"}
    assert named == public


def test_no_stage_module_imports_the_root_config():
    package = ROOT / "src" / "mathlora"
    cli_side = {"cli", "cliargs", "config", "pipeline", "stages", "__main__"}
    modules = sorted("mathlora." + ".".join(p.relative_to(package).with_suffix("").parts)
                     for p in package.rglob("*.py")
                     if p.stem not in cli_side and p.stem != "commands" and p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            "print('mathlora.config' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(package.parent), "PATH": ""})
    assert done.stdout.strip() == "False", modules


CLI_SIDE = {"cli", "cliargs", "config", "pipeline", "stages", "commands", "__main__"}


def test_no_stage_module_imports_the_root_config_even_inside_a_function():
    """The import check above sees only imports made at import time; this one reads every import statement,
    inside functions too (``if TYPE_CHECKING:`` blocks aside: they never run)."""
    import ast

    package = ROOT / "src" / "mathlora"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.stem in CLI_SIDE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            found += [f"{path.relative_to(package)}:{node.lineno}" for n in names if n == "mathlora.config"]
    assert found == []
