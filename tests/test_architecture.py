"""docs/ARCHITECTURE.md matches the code, and the stage modules keep their contract."""

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

from mathlora.app.config import Config
from mathlora.run_dir.layout import EvalLayout, RunLayout
from mathlora.app.stages import STAGES

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
            "print('mathlora.app.config' in sys.modules)")
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
            found += [f"{path.relative_to(package)}:{node.lineno}" for n in names if n == "mathlora.app.config"]
    assert found == []


# -- the shape of the package (issue 28): stages in their packages, no cycles, file and root sizes -------------

PACKAGE = ROOT / "src" / "mathlora"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    names = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("mathlora", *names))


def import_graph() -> dict[str, set[str]]:
    """module -> the mathlora modules it imports, inside functions too (``if TYPE_CHECKING:`` blocks aside)."""
    import ast

    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycle_counting_imports_inside_functions():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_every_stage_is_declared_in_its_packages_stage_module():
    from mathlora.app.stages import STAGE_LIST

    for stage in STAGE_LIST:
        module = stage.run.__module__
        assert module.startswith("mathlora.") and module.endswith(".stage"), (stage.name, module)


def test_the_where_table_names_one_folder_per_stage_and_it_declares_the_stage():
    from mathlora.app.stages import STAGE_LIST

    rows = table("Where does each stage live")
    where = {name: ticked(row[1]) for row in rows for name in ticked(row[0])}
    assert set(where) == set(STAGES)
    for stage in STAGE_LIST:
        folders = where[stage.name]
        assert len(folders) == 1, (stage.name, folders)
        package = "mathlora." + folders[0].strip("/").replace("/", ".")
        assert stage.run.__module__ == f"{package}.stage", (stage.name, stage.run.__module__)


# The package root's modules (issue 28 asks for at most 8): a ceiling that only comes down.
ROOT_MODULES = 8


def test_no_source_file_over_400_lines():
    """A file past 400 lines is holding two jobs (issue 28): split by job, not by length."""
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
               for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_the_package_root_holds_no_more_modules_than_before():
    modules = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) <= ROOT_MODULES, sorted(modules)


# The layers, bottom to top (docs/ARCHITECTURE.md, "Layers"): an import points down or sideways, never up.
# Every ``commands`` module is the app's (it registers a stage's command on the CLI).
LAYERS = {"mathlora": 0, "mathlora.errors": 0, "mathlora.run_dir": 1, "mathlora.arith": 2, "mathlora.modeling": 3,
          **{f"mathlora.{p}": 4 for p in ("synth", "data", "label", "train", "grpo", "evaluate", "export", "report",
                                           "serve")},
          "mathlora.app": 5, "mathlora.__main__": 5}


def layer_of(module: str) -> int:
    if module.rsplit(".", 1)[-1] == "commands":
        return LAYERS["mathlora.app"]
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS and to ARCHITECTURE.md")


def test_no_import_runs_up_a_layer():
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if t != "mathlora" and layer_of(t) > layer_of(m))
    assert upward == []


# An import inside a function only keeps a heavy or optional library out of the CLI's start-up (issue 28):
# a heavy library itself, a third-party package that is not always installed, a platform-only module, or a
# mathlora module whose import-time imports reach one of those. Anything else sits at the top of its module.
HEAVY = {"torch", "transformers", "peft", "datasets", "pyarrow", "matplotlib", "mindspore", "mindformers", "uvicorn",
         "starlette", "httpx", "openai", "boto3", "botocore", "s3fs", "fsspec", "wandb", "mlflow", "tensorboard",
         "trl", "huggingface_hub", "safetensors", "accelerate", "tokenizers", "numpy", "pandas", "rich", "tqdm"}
LIGHT = {"pydantic", "yaml"}  # third-party, always installed, and loaded by the CLI anyway
PLATFORM_ONLY = {"fcntl", "msvcrt", "resource", "termios", "winreg"}


def _typing_only(tree) -> set[int]:
    import ast

    return {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}


def _import_time_imports(tree) -> list:
    """The import statements that run when the module is imported (the module's body, its ifs and trys)."""
    import ast

    skip, found = _typing_only(tree), []

    def walk(body):
        for node in body:
            if id(node) in skip:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, (ast.If, ast.Try)):
                for part in (node.body, node.orelse, getattr(node, "finalbody", []),
                             *(h.body for h in getattr(node, "handlers", []))):
                    walk(part)
    walk(tree.body)
    return found


def _names(node) -> list[str]:
    import ast

    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module, *(f"{node.module}.{a.name}" for a in node.names)] if node.level == 0 else []


def test_an_import_inside_a_function_keeps_a_heavy_library_out_of_start_up():
    import ast

    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in modules.items()}
    cone: dict[str, set[str]] = {m: set() for m in modules}
    outside: dict[str, set[str]] = {m: set() for m in modules}
    for m, tree in trees.items():
        parts = m.split(".")
        cone[m] |= {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules}
        for node in _import_time_imports(tree):
            for name in _names(node):
                if name in modules:
                    cone[m].add(name)
                elif not name.startswith("mathlora"):
                    outside[m].add(name.split(".")[0])

    def heavy_library(top: str) -> bool:
        return top in HEAVY or top in PLATFORM_ONLY or (top not in sys.stdlib_module_names and top not in LIGHT)

    heavy: dict[str, bool] = {}

    def is_heavy(m: str, seen: frozenset = frozenset()) -> bool:
        if m not in heavy:
            heavy[m] = (any(map(heavy_library, outside[m]))
                        or any(is_heavy(t, seen | {m}) for t in cone[m] if t not in seen | {m}))
        return heavy[m]

    light = []
    for m, tree in trees.items():
        top = {id(n) for n in _import_time_imports(tree)} | _typing_only(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            names = _names(node)[:1] if isinstance(node, ast.ImportFrom) else _names(node)
            if names and not any(is_heavy(n) if n in modules else heavy_library(n.split(".")[0]) for n in
                                 names + _names(node)[1:]):
                light.append(f"{m}:{node.lineno}: {ast.unparse(node)}")
    assert light == []
