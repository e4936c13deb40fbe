"""Dependencies point inward: each layer imports only the layers DESIGN.md allows."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"domain", "ledger", "projections", "adapters", "api", "migrations"}
DRIVERS = {"fastapi", "starlette", "sqlalchemy", "psycopg", "pymodbus", "celery", "httpx",
           "alembic", "uvicorn", "redis", "openpyxl"}
ALLOWED = {
    "domain": {"domain"},
    "ledger": {"domain", "ledger"},
    "projections": {"domain", "ledger", "projections"},
    "adapters": {"domain", "ledger", "projections", "adapters"},
}


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
