"""Dependencies point inward: each layer imports only the layers DESIGN.md allows."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"domain", "ledger", "projections", "processes", "adapters", "api", "migrations",
        "bootstrap"}
DRIVERS = {"fastapi", "starlette", "sqlalchemy", "psycopg", "pymodbus", "celery", "httpx",
           "alembic", "uvicorn", "redis", "openpyxl"}
ALLOWED = {
    "domain": {"domain"},
    "ledger": {"domain", "ledger"},
    "projections": {"domain", "ledger", "projections"},
    "processes": {"domain", "ledger", "projections", "processes"},
    "adapters": {"domain", "ledger", "projections", "adapters"},
}
# Entry points inside adapters/ that start from the composition root.
STARTS_FROM_BOOTSTRAP = {"adapters/celery_app.py", "adapters/platform.py"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_inner_layers(layer):
    offenders = {}
    for path in (ROOT / layer).rglob("*.py"):
        bad = (imported_top_levels(path) & OURS) - ALLOWED[layer]
        if str(path.relative_to(ROOT)) in STARTS_FROM_BOOTSTRAP:
            bad -= {"bootstrap"}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_domain_imports_no_driver_or_framework():
    offenders = {}
    for path in (ROOT / "domain").rglob("*.py"):
        bad = imported_top_levels(path) & DRIVERS
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
