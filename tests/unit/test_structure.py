"""The shape of the application layer: no import cycles, a core that knows no feature,
thin routes, features that keep their internals to themselves."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Feature modules of the application layer; anything else in ledger/ is shared.
FEATURES = {"ledger.accounts", "ledger.metering", "ledger.devices", "ledger.payments",
            "ledger.periods", "ledger.cutoff",
            "ledger.property", "ledger.alerts", "ledger.access"}
CHECKED = ("ledger", "processes", "projections")
# Each feature's read side: its tables, the view that projects them, its queries.
PROJECTION_FEATURES = ("accounts", "metering", "devices", "payments", "property", "alerts",
                       "access")
# The reads and writes across features' read sides that the features need, each a table
# of the other feature's (never its view or its queries):
CROSS_FEATURE_TABLES = {
    # A command given up is a meter alert, kept with the meter's other alerts.
    ("projections.devices.view", "projections.metering.tables"),
    # The device runtime polls the gateways and meters that metering registered.
    ("projections.devices.queries", "projections.metering.tables"),
    # A caller confined to some sites sees the alerts of those sites' accounts.
    ("projections.alerts.queries", "projections.accounts.tables"),
    # Access control asks where each thing belongs: accounts, transactions, meters,
    # gateways, commands and orders.
    ("projections.access.queries", "projections.accounts.tables"),
    ("projections.access.queries", "projections.metering.tables"),
    ("projections.access.queries", "projections.devices.tables"),
    ("projections.access.queries", "projections.payments.tables"),
}
# The entry points: the API's routes and helpers, and the web pages built on them.
ENTRY_POINTS = ("api", "web")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(tops: tuple[str, ...] = CHECKED) -> dict[str, Path]:
    found = {}
    for top in tops:
        for path in (ROOT / top).rglob("*.py"):
            found[module_name(path)] = path
    found["bootstrap"] = ROOT / "bootstrap.py"
    return found


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import, those under TYPE_CHECKING included: a cycle
    for the type checker is still a cycle for the reader."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def import_graph(known: dict[str, Path] | None = None) -> dict[str, set[str]]:
    known = modules() if known is None else known
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for module, names in imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
            if not targets:
                while module and module not in known:
                    module = module.rpartition(".")[0]
                targets = [module] if module else []
            graph[name].update(t for t in targets if t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules_of_the_core_features_and_read_models():
    assert cycles(import_graph()) == []


def test_no_import_cycle_among_the_modules_of_the_api_and_the_web_pages():
    """Imports inside functions count: a cycle put off until call time is still one."""
    assert cycles(import_graph(modules(CHECKED + ENTRY_POINTS))) == []


def test_the_core_imports_no_feature():
    offenders = {}
    for path in (ROOT / "ledger" / "core").rglob("*.py"):
        bad = sorted(m for m, _ in imports(path)
                     if m.startswith(("ledger.", "projections", "adapters", "api", "processes"))
                     and not m.startswith(("ledger.core", "ledger.outcome")))
        if bad:
            offenders[module_name(path)] = bad
    assert offenders == {}


def feature_imports(found: dict[str, Path]) -> dict[str, list[str]]:
    """The features among ``found`` that import another feature, with what they import."""
    offenders = {}
    for name, path in found.items():
        if name not in FEATURES:
            continue
        bad = sorted(m for m, _ in imports(path) if m in FEATURES and m != name)
        if bad:
            offenders[name] = bad
    return offenders


def test_a_feature_imports_no_other_feature():
    """Features meet in the core and in the composition root, never inside each other."""
    assert feature_imports(modules()) == {}


def test_every_feature_named_is_a_module():
    assert FEATURES <= set(modules())


def test_the_feature_check_finds_a_feature_importing_another(tmp_path):
    devices = tmp_path / "devices.py"
    devices.write_text("from typing import Protocol\n"
                       "from ledger.relays import order_relay\n"
                       "from ledger.cutoff import CutoffService\n")
    metering = tmp_path / "metering.py"
    metering.write_text("import ledger.devices\n")
    assert feature_imports({"ledger.devices": devices, "ledger.metering": metering}) == {
        "ledger.devices": ["ledger.cutoff"], "ledger.metering": ["ledger.devices"]}


def test_nobody_imports_private_names_of_another_module():
    offenders = {}
    for name, path in modules().items():
        for module, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and module.split(".")[0] in {"ledger", "processes", "projections"}:
                offenders.setdefault(name, []).extend(f"{module}.{n}" for n in private)
    assert offenders == {}


def projection_feature(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "projections" and parts[1] in PROJECTION_FEATURES:
        return parts[1]
    return None


def test_a_features_read_side_imports_no_other_features_but_the_tables_it_needs():
    """A feature's tables, view and queries live in ``projections/<feature>/``; another
    feature's package is reached only for the tables listed in CROSS_FEATURE_TABLES."""
    offenders = {}
    for name, path in modules().items():
        feature = projection_feature(name)
        if feature is None:
            continue
        bad = sorted(m for m, _ in imports(path)
                     if projection_feature(m) not in (None, feature)
                     and (name, m) not in CROSS_FEATURE_TABLES)
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_every_cross_feature_allowance_is_still_used():
    used = {(name, m) for name, path in modules().items() for m, _ in imports(path)}
    assert CROSS_FEATURE_TABLES - used == set()


def test_no_shared_module_of_the_read_side_is_named_after_a_feature():
    """Shared machinery sits at the top of ``projections/``; a feature's code in its
    package, not in a ``projections/<feature>_something.py`` beside it."""
    named = sorted(path.name for path in (ROOT / "projections").glob("*.py")
                   if path.stem.split("_")[0] in PROJECTION_FEATURES + ("ledger",))
    assert named == []


def test_the_catalogue_holds_every_features_tables_and_declares_none():
    import projections.tables as catalogue
    from sqlalchemy import Table

    packages = sorted(p.parent.name for p in (ROOT / "projections").glob("*/tables.py"))
    assert packages == sorted(PROJECTION_FEATURES)
    gathered = sorted(m.__name__ for m in catalogue.FEATURE_TABLES)
    assert gathered == sorted(f"projections.{f}.tables" for f in PROJECTION_FEATURES)
    assert not [n for n, v in vars(catalogue).items() if isinstance(v, Table)]
    for module in catalogue.FEATURE_TABLES:
        for value in vars(module).values():
            if isinstance(value, Table):
                assert catalogue.metadata.tables[value.name] is value


def route_files() -> list[Path]:
    return sorted((ROOT / "api" / "routes").glob("*.py"))


def test_routes_use_no_sql_and_no_engine():
    offenders = {}
    for path in route_files():
        source = path.read_text()
        bad = sorted({m for m, _ in imports(path) if m.split(".")[0] == "sqlalchemy"} |
                     {m for m, _ in imports(path)
                      if m in ("projections.tables", "projections.schema")
                      or (projection_feature(m) and m.endswith(".tables"))} |
                     ({".engines"} if ".engines" in source else set()))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_routes_call_no_private_method():
    offenders = {}
    for path in route_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                offenders.setdefault(path.name, []).append(f"{node.attr} (line {node.lineno})")
    assert offenders == {}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Route files whose routes are still handed the whole Platform: none, every route is handed
# the services and query objects of api/services.py it uses. The set may only shrink (a
# file that no longer needs to be on it fails the test too).
TAKE_THE_PLATFORM: set[str] = set()


def page_files() -> list[Path]:
    """The web pages' modules: their pages are handed their services as the routes are."""
    return sorted((ROOT / "web").glob("*.py"))


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
         and isinstance(n.value, str)}


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def own_nodes(node: ast.AST):
    """The nodes of a module's or a function's own scope: not those of the functions,
    lambdas and classes inside it."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, (*FUNCTIONS, ast.Lambda, ast.ClassDef)):
            yield from own_nodes(child)


def binds(scope: ast.AST, name: str) -> bool:
    """Whether ``name`` is a parameter of the function ``scope``, or assigned or imported
    in its own scope (or the module's)."""
    if isinstance(scope, FUNCTIONS):
        arguments = scope.args
        params = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + \
            [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        if any(p.arg == name for p in params):
            return True
    return any((isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == name)
               or (isinstance(n, (ast.Import, ast.ImportFrom))
                   and any((a.asname or a.name) == name for a in n.names))
               for n in own_nodes(scope))


def closures_over_platform(tree: ast.Module) -> list[str]:
    """The functions that use a ``platform`` of a scope around them: a page built inside
    ``console_app(platform)``, or one reading a module's ``platform``."""
    found = set()
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, FUNCTIONS))]:
        if not binds(scope, "platform"):
            continue
        for inner in ast.walk(scope):
            if inner is scope or not isinstance(inner, FUNCTIONS) or \
                    binds(inner, "platform"):
                continue
            if any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                   and n.id == "platform" for s in inner.body for n in ast.walk(s)):
                found.add((inner.lineno, inner.name))
    return [f"{name} closes over platform (line {line})" for line, name in sorted(found)]


def platform_takers(source: str) -> list[str]:
    """The routes and pages (functions under ``@router.<method>`` or ``@app.<method>``)
    that take the Platform: a parameter typed ``Platform``, or an alias of it (``Plat =
    Annotated[Platform, ...]``), or given by ``Depends(platform)``; any reach for it
    through ``app.state.platform``; and any function closing over a ``platform``."""
    tree = ast.parse(source)
    wide = {"Platform"}
    for node in tree.body:
        if isinstance(node, ast.Assign) and names_in(node.value) & {"Platform", "platform"}:
            wide |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    found = closures_over_platform(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "platform" \
                and isinstance(node.value, ast.Attribute) and node.value.attr == "state":
            found.append(f"app.state.platform (line {node.lineno})")
        if not isinstance(node, FUNCTIONS) or not any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                and isinstance(d.func.value, ast.Name) and d.func.value.id in ("router", "app")
                for d in node.decorator_list):
            continue
        arguments = node.args
        params = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
        defaults = [d for d in arguments.defaults + arguments.kw_defaults if d is not None]
        if any(p.annotation is not None and names_in(p.annotation) & wide for p in params) \
                or any(isinstance(d, ast.Call) and "platform" in names_in(d)
                       for d in defaults):
            found.append(f"{node.name} (line {node.lineno})")
    return found


def test_routes_are_handed_their_services_not_the_platform():
    takers = {path.name: platform_takers(path.read_text()) for path in route_files()}
    assert {name: found for name, found in takers.items()
            if found and name not in TAKE_THE_PLATFORM} == {}
    assert sorted(name for name in TAKE_THE_PLATFORM if not takers.get(name)) == [], \
        "converted: take it off TAKE_THE_PLATFORM"
    pages = {f"web/{path.name}": platform_takers(path.read_text()) for path in page_files()}
    assert "web/console.py" in pages and "web/tenant.py" in pages
    assert {name: found for name, found in pages.items() if found} == {}


def test_the_platform_finder_finds_a_route_that_takes_the_platform():
    source = '''
Plat = Annotated[Platform, Depends(platform)]

@router.get("/a")
def a(p: Plat) -> dict: ...

@router.post("/b")
async def b(x: int, p: Platform = Depends(platform)) -> dict: ...

@router.get("/c")
def c(request: Request, accounts: Accounts) -> dict:
    return request.app.state.platform

def helper(p: Plat) -> None: ...
'''
    assert sorted(platform_takers(source)) == ["a (line 5)", "app.state.platform (line 12)",
                                               "b (line 8)"]


def test_the_platform_finder_finds_a_page_that_closes_over_the_platform():
    source = '''
def console_app(platform) -> FastAPI:
    app = FastAPI()

    async def operator(request: Request) -> Principal:
        return platform.auth.from_token(request.cookies.get("session"))

    @app.get("/")
    async def overview(request: Request) -> HTMLResponse:
        return render(request, tiles=views.tiles(platform, await operator(request)))

    @app.get("/login")
    async def login_form(request: Request, auth: Auth) -> HTMLResponse: ...

    def loaded(platform, account_id: str) -> dict:
        return platform.queries.get_account(account_id)

    return app


def tenant_app(state: State) -> FastAPI:
    app = FastAPI()
    app.state.platform = state.platform

    @app.get("/a/{account_id}")
    async def account_page(request: Request, account_id: str, p: Plat) -> HTMLResponse: ...

    return app

Plat = Annotated[Platform, Depends(platform)]
platform = Platform()

@router.get("/t/")
async def home(request: Request, queries: Queries) -> HTMLResponse:
    return render(request, accounts=platform.queries.list_accounts())
'''
    assert sorted(platform_takers(source)) == [
        "account_page (line 26)", "app.state.platform (line 23)",
        "home closes over platform (line 34)", "operator closes over platform (line 5)",
        "overview closes over platform (line 9)"]


def command_classes() -> list[type]:
    """Every command defined in a module of ``ledger/commands/``."""
    import dataclasses
    import importlib
    import inspect

    from ledger.commands import Command

    found = []
    for path in sorted((ROOT / "ledger" / "commands").glob("*.py")):
        module = importlib.import_module(module_name(path))
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Command) and value.__module__ == module.__name__ and \
                    dataclasses.is_dataclass(value):
                found.append(value)
    return found


def test_every_command_is_a_frozen_dataclass_with_a_name_and_a_key():
    import dataclasses

    commands = command_classes()
    assert len(commands) >= 7
    for command in commands:
        params = command.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, f"{command.__name__} is not frozen"
        assert isinstance(command.action, str) and command.action, command.__name__
        fields = {f.name for f in dataclasses.fields(command)}
        # A retry is answered from the first (a key), or the command says what a repeat
        # does, or it is decided only inside a batch command that does.
        assert "idempotency_key" in fields or command.repeat or command.part_of, \
            f"{command.__name__} has no idempotency key and says nothing of a repeat"


def test_every_command_is_carried_out_by_exactly_one_service():
    from ledger.app import Ledger

    ledger = Ledger(group_commit_max_commands=1)
    try:
        table = ledger.handlers
        names = {c.__name__: c for c in command_classes()}
        missing = [c.__name__ for c in command_classes()
                   if c not in table and not (c.part_of and names[c.part_of] in table)]
        assert missing == [], f"no service carries out {missing}"
        for kind, handler in table.items():
            owner = handler.__self__  # type: ignore[attr-defined]
            assert owner in (ledger.accounts, ledger.periods, ledger.devices, ledger.metering,
                             ledger.cutoff, ledger.alerts, ledger.payments, ledger.property,
                             ledger.access), kind.__name__
    finally:
        ledger.close()


def test_the_handler_table_refuses_a_command_claimed_by_two_services():
    import pytest

    from ledger.commands import TopUp, handler_table

    class Claims:
        def handlers(self):
            return {TopUp: lambda command, actor: None}

    with pytest.raises(TypeError, match="TopUp is carried out by two services"):
        handler_table([Claims(), Claims()])
