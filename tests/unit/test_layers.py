"""The house's layers, enforced: which package may import which.

Each project's folder is an import root (`ferlite` is a namespace package they share):
  services/common/ferlite/v1/               the contract (generated): imports nothing of ours
  services/common/ferlite/base/             labels, architectures, metadata, preprocessing, events: the contract
  services/common/ferlite/services/common/  the one server builder, configs, channels: base and contract
  services/<name>/ferlite/services/<name>/  one service (facedetect, classifier, aggregator, dashboard): itself,
                                            services.common, base, contract; no other service
  training/ferlite/training/                base and contract; never a service or the application
  services/app/ferlite/app/                 the CLI, local stack, camera client, demo: anything (nothing imports it)

Tests and benchmarks are separate consumers: no test imports a benchmark, no benchmark a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT
from tests.support.procs import PROJECT_ROOTS


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "ferlite":
        return "third-party"
    if len(parts) == 1:
        return "root"
    if parts[1] == "services" and len(parts) > 2:
        return f"services.{parts[2]}"
    return parts[1] if parts[1] in ("v1", "base", "training", "app", "services") else "root"


def allowed(source: str, target: str) -> bool:
    if target in ("third-party", source) or (target == "root" and source != "v1"):
        return True
    rules = {
        "v1": set(),
        "base": {"v1"},
        "services.common": {"base", "v1"},
        "training": {"base", "v1"},
        "root": {"app"},  # __main__ runs the CLI
    }
    if source in rules:
        return target in rules[source]
    if source.startswith("services."):
        return target in {"services.common", "base", "v1"}
    return source == "app"


def import_root(path: Path) -> Path:
    """The project folder `path` is under (its import root)."""
    return next(r for r in PROJECT_ROOTS if path.is_relative_to(r))


def module_name(path: Path, src: Path | None = None) -> str:
    rel = path.relative_to(src or import_root(path)).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path | None = None) -> list[tuple[int, str]]:
    """Every module `path` imports (relative imports resolved), with its line, lazy imports included."""
    tree = ast.parse(path.read_text())
    package = module_name(path, src).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from ferlite import training` names a package, not an attribute
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names if name == "ferlite"]
    return found


def violations(files: list[Path], src: Path | None = None) -> list[str]:
    bad = []
    for path in files:
        source = layer(module_name(path, src))
        for line, target in imports(path, src):
            if not allowed(source, layer(target)):
                bad.append(f"{path.relative_to(src or ROOT)}:{line}: {source} imports {target}")
    return bad


def project_files() -> list[Path]:
    return [p for root in PROJECT_ROOTS for p in (root / "ferlite").rglob("*.py") if "/v1/" not in p.as_posix()]


def test_every_module_imports_only_the_layers_below_it() -> None:
    files = project_files()
    assert len(files) > 50
    assert violations(files) == []


def test_each_project_holds_only_its_own_layer() -> None:
    """The folders say the layers: a service's project holds that service only, training only
    training, the application only the application; no other top-level folder holds code."""
    owners = {"common": {"v1", "base", "services.common"}, "facedetect": {"services.facedetect"},
              "classifier": {"services.classifier"}, "aggregator": {"services.aggregator"},
              "dashboard": {"services.dashboard"},
              "app": {"app", "root"}, "training": {"training"}}
    for path in project_files():
        root = import_root(path)
        assert layer(module_name(path)) in owners[root.name], path
    assert not (ROOT / "src").exists()


def test_the_rules_catch_a_service_importing_another_and_training_importing_a_service(tmp_path) -> None:
    """The checker itself: a planted bad import in each forbidden direction is reported."""
    cases = {
        "ferlite/services/facedetect/bad.py": "from ferlite.services.aggregator.store import RedisStore\n",
        "ferlite/training/bad.py": "from ferlite.services.classifier import core\n",
        "ferlite/base/bad.py": "from ..training import models\n",
        "ferlite/services/common/bad.py": "import ferlite.app.stack\n",
    }
    files = []
    for rel, text in cases.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files.append(path)
    assert len(violations(files, tmp_path)) == len(cases)


def test_tests_and_benchmarks_do_not_import_each_other() -> None:
    bad = []
    for folder, other in (("tests", "benchmarks"), ("benchmarks", "tests")):
        for path in (ROOT / folder).rglob("*.py"):
            if "results" in path.relative_to(ROOT).parts:  # benchmarks/results/tmp holds peers' venvs
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                        if n == other or n.startswith(f"{other}.")]
    assert bad == []


def resolves(module: str) -> bool:
    """Whether `module` (ferlite.x.y) is a file or package under some project's import root: found
    from the file tree alone, as a static tool would."""
    parts = module.split(".")
    for root in PROJECT_ROOTS:
        base = root.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file() or base.is_dir():
            return True
    return False


def test_every_ferlite_import_resolves_to_a_file_of_a_project() -> None:
    """Issue 26: import paths readable from file paths with no remap table: every `ferlite...` name a
    module imports is a module or package file under one project's folder (or, for `from X import
    name`, X is)."""
    unresolved = []
    for path in project_files():
        for line, target in imports(path):
            if target.startswith("ferlite.") and not resolves(target) and not resolves(target.rsplit(".", 1)[0]):
                unresolved.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert unresolved == []
    assert not resolves("ferlite.services.nowhere") and resolves("ferlite.services.facedetect.server")
