"""House rules as a test: imports only point down the layers, and the core stays free of frameworks.

Layers, lowest first: manga_intent (core) < serving, labeling < resources < manga_assets, sensors. Every
`import` statement counts, including ones inside functions: a lazy upward import is still an upward import.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = {"manga_intent": 1, "serving": 2, "labeling": 2, "resources": 3, "manga_assets": 4, "sensors": 4}
#: Third-party frameworks a layer must not import (the core is pure; the service starts without Dagster).
FORBIDDEN = {
    "manga_intent": {
        "dagster",
        "dagster_aws",
        "dagster_mlflow",
        "dagster_postgres",
        "dagster_k8s",
        "fastapi",
        "starlette",
        "uvicorn",
        "mlflow",
        "boto3",
        "botocore",
    },
    "serving": {"dagster", "dagster_aws", "dagster_mlflow", "dagster_postgres", "dagster_k8s"},
    "labeling": {"dagster", "dagster_aws", "dagster_mlflow", "dagster_postgres", "dagster_k8s"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def violations(root: Path = REPO) -> list[str]:
    problems = []
    for package, rank in LAYER.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                where = f"{path.relative_to(root)}:{line} imports {module}"
                if LAYER.get(top, 0) > rank:
                    problems.append(f"{where} (layer {LAYER[top]} above {package}'s {rank})")
                if top in FORBIDDEN.get(package, ()):
                    problems.append(f"{where} ({package} must not import {top})")
    return problems


def test_imports_point_down_the_layers():
    assert violations() == []


def test_every_python_package_has_a_layer():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages <= set(LAYER), f"packages without a layer: {packages - set(LAYER)}"


@pytest.mark.parametrize(
    "package,line",
    [
        ("manga_intent", "from manga_assets.definitions import defs\n"),
        ("serving", "import dagster\n"),
        ("resources", "def f():\n    from sensors.monitoring import drift_sensor\n"),
    ],
)
def test_the_check_catches_upward_and_framework_imports(tmp_path, package, line):
    for name in LAYER:
        (tmp_path / name).mkdir()
    (tmp_path / package / "bad.py").write_text(line)
    assert len(violations(tmp_path)) == 1
