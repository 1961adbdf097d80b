"""The architecture stays honest: a walk over the AST of tlrl/, algorithms/ and envs/ (issue 14).

Each test fails naming `file:line` and the fix:

- no reads or writes of another object's underscore attribute (`x._name` where x is not `self`,
  `cls` or `super()`; `getattr(x, "_name")` too), and no `from module import _name` (a package's
  own private modules excepted). Inside a class, `other._name` is allowed when the class itself
  defines `_name` and `other` is a plain local name (another instance, e.g. in a `load`
  classmethod); `ALLOWED_PRIVATE` lists the few third-party internals with no public equivalent;
- no getattr/hasattr probes of agents outside the agent classes (and, in drivers, of anything
  reached through an agent); the issue's grep finds nothing;
- file sizes: 400 lines in tlrl/, algorithms/, envs/; 300 per algorithm file; TD3 80; SAC 250;
- inheritance at most two levels below `tlrl.agent.BaseAgent`;
- no import cycle among tlrl's modules (module-level imports; the runner and its workers are one
  package, tlrl.runner); each layer of docs/architecture.md imports only from its own or lower layers.
"""
from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from typing import Dict, Iterator, List, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: folder -> the import name it is installed as (setup.cfg package_dir)
PACKAGES = {"tlrl": "tlrl", "algorithms": "tlrl.algorithms", "envs": "tlrl.envs"}

#: underscore names that are public API of the standard library (not another module's privates)
PUBLIC_UNDERSCORE = {
    "_replace", "_asdict", "_fields", "_make", "_field_defaults",  # collections.namedtuple / typing.NamedTuple
    "_exit",  # os._exit: the documented way for a forked/spawned child to leave without cleanup
}

#: (file, name) pairs allowed on a receiver other than self/cls, each with the reason.
ALLOWED_PRIVATE: Dict[Tuple[str, str], str] = {
    ("tlrl/layers/keras_interop.py", "_is_default"): "Keras marks its own default Model.build so; no public API "
                                                     "tells whether a user model overrides build",
    ("tlrl/layers/keras_interop.py", "_value"): "the tf.Variable inside a Keras 3 variable, last fallback after the "
                                                "public `value`",
}

#: Drivers: modules that run agents from outside (they may use only agents' public methods/attributes).
DRIVERS = ("tlrl/loop.py", "tlrl/collector.py", "tlrl/training.py", "tlrl/cli.py", "tlrl/checkpointing.py",
           "tlrl/export.py", "tlrl/run_dir.py", "tlrl/runner/")

GREP = re.compile(r"getattr\((self\.)?agent|hasattr\((self\.)?agent|agent\._[a-z]")


def _files() -> List[str]:
    """Every .py file of the three folders, relative to the repository root."""
    out = []
    for folder in PACKAGES:
        for dirpath, dirnames, files in os.walk(os.path.join(ROOT, folder)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            out += [os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
                    for f in sorted(files) if f.endswith(".py")]
    return out


FILES = _files()
_TREES: Dict[str, ast.Module] = {}


def _tree(rel: str) -> ast.Module:
    if rel not in _TREES:
        with open(os.path.join(ROOT, rel)) as fh:
            _TREES[rel] = ast.parse(fh.read(), rel)
    return _TREES[rel]


def _module_name(rel: str) -> str:
    parts = rel[:-3].split("/")
    name = ".".join([PACKAGES[parts[0]]] + parts[1:])
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_self_or_super(node: ast.expr) -> bool:
    if isinstance(node, ast.Name) and node.id in ("self", "cls"):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _report(hits: List[str], what: str, fix: str) -> str:
    return f"{len(hits)} {what}:\n  " + "\n  ".join(hits) + f"\nFix: {fix}"


# ----- (a) private attributes of other objects and modules --------------------------------------
def _own_names(cls: ast.ClassDef) -> Set[str]:
    """The underscore names class `cls` defines itself: its methods, class attributes and `self._x = ...`."""
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in cls.body:
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _in_body(cls, node):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self_or_super(node.value):
            names.add(node.attr)
    return {n for n in names if _private(n)}


def _in_body(cls: ast.ClassDef, name: ast.Name) -> bool:
    return any(name in ast.walk(stmt) for stmt in cls.body if isinstance(stmt, (ast.Assign, ast.AnnAssign)))


def _private_module(module: str, rel: str) -> bool:
    """Whether importing from `module` in file `rel` reaches into a private module of another package."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            package = ".".join(parts[:i])
            here = _module_name(rel)
            return not (here == package or here.startswith(package + "."))  # a package's own privates are fine
    return False


def _private_hits_in(tree: ast.AST, rel: str) -> Iterator[str]:
    """The private-name uses in one parsed file `rel` (see the module docstring)."""
    def visit(node: ast.AST, own: Set[str]) -> Iterator[str]:
        if isinstance(node, ast.ClassDef):
            own = own | _own_names(node)
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in PUBLIC_UNDERSCORE \
                and not _is_self_or_super(node.value) and (rel, node.attr) not in ALLOWED_PRIVATE:
            # another instance of the class that defines the name (e.g. `buf._pos` in ReplayBuffer.load)
            if not (node.attr in own and isinstance(node.value, ast.Name) and "agent" not in node.value.id.lower()):
                yield f"{rel}:{node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2 and \
                isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) and \
                _private(node.args[1].value) and not _is_self_or_super(node.args[0]) and \
                (rel, node.args[1].value) not in ALLOWED_PRIVATE:
            yield f"{rel}:{node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = _resolve(rel, node)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if _private_module(full, rel):
                    yield f"{rel}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _private_module(alias.name, rel):
                    yield f"{rel}:{node.lineno}: import {alias.name}"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, own)

    yield from visit(tree, set())


def _hits(check) -> List[str]:
    """Every hit of `check(tree, rel)` over the package's files."""
    return [hit for rel in FILES for hit in check(_tree(rel), rel)]


def test_no_private_attributes_of_other_objects_or_modules():
    hits = _hits(_private_hits_in)
    assert not hits, _report(hits, "reads/writes of another object's or module's underscore name",
                             "make the name public in its owner (an extension point, a documented attribute or "
                             "function), or move the code into the class that owns it.")


# ----- (b) getattr/hasattr probes of agents --------------------------------------------------------
def _mentions_agent(node: ast.expr, whole: bool) -> bool:
    """Whether `node` names an agent: its last name contains 'agent' (or, with `whole`, any name in it)."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)] + \
            [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
    if whole:
        return any("agent" in n.lower() for n in names)
    last = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return "agent" in last.lower()


def _probe_hits_in(tree: ast.AST, rel: str) -> Iterator[str]:
    driver = rel.startswith(DRIVERS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr") and node.args and _mentions_agent(node.args[0], whole=driver):
            yield f"{rel}:{node.lineno}: {ast.unparse(node)}"


def test_no_getattr_or_hasattr_probes_of_agents():
    hits = _hits(_probe_hits_in)
    assert not hits, _report(hits, "getattr/hasattr probes of an agent (or, in drivers, of something it holds)",
                             "call a public method or read a public attribute every agent has (tlrl.agent.BaseAgent "
                             "defines the default); an agent-specific need becomes an extension point.")


def test_the_issues_grep_finds_nothing():
    """`grep -rnE "getattr\\((self\\.)?agent|hasattr\\((self\\.)?agent|agent\\._[a-z]" tlrl envs algorithms`."""
    hits = []
    for rel in FILES:
        with open(os.path.join(ROOT, rel)) as fh:
            hits += [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(fh, 1) if GREP.search(line)]
    assert not hits, _report(hits, "lines the issue's grep finds", "as in the two tests above.")


# ----- (c) file sizes ----------------------------------------------------------------------------
def _limit(rel: str) -> int:
    if rel == "algorithms/td3.py":
        return 80
    if rel == "algorithms/sac.py":  # issue 15: SAC in one file of at most 250 lines
        return 250
    if rel.startswith("algorithms/") and not rel.endswith("__init__.py"):
        return 300
    return 400


def test_file_sizes():
    hits = []
    for rel in FILES:
        with open(os.path.join(ROOT, rel), "rb") as fh:
            lines = fh.read().count(b"\n")  # as `wc -l` counts
        if lines > _limit(rel):
            hits.append(f"{rel}: {lines} lines > {_limit(rel)}")
    assert not hits, _report(hits, "files over their size limit (wc -l, docstrings included)",
                             "split the file where it holds two jobs (or move shared code into tlrl/).")


# ----- (d) inheritance depth ------------------------------------------------------------------------
def _agent_classes() -> List[type]:
    from tlrl.agent import BaseAgent
    from tlrl.algorithms import REGISTRY, get_algorithm

    for name in REGISTRY:
        get_algorithm(name)
    for rel in FILES:  # every agent class in algorithms/, registered or not
        if rel.startswith("algorithms/"):
            importlib.import_module(_module_name(rel))
    found, todo = [], list(BaseAgent.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.split(".")[0] == "tlrl":
            found.append(cls)
    return found


def _depth_hits(classes) -> List[str]:
    from tlrl.agent import BaseAgent

    hits = []
    for c in classes:
        depth = c.__mro__.index(BaseAgent)  # 1: a direct subclass
        if depth > 2:
            hits.append(f"{c.__module__}.{c.__qualname__}: " + " -> ".join(k.__name__ for k in c.__mro__[:depth + 1]))
    return hits


def test_inheritance_at_most_two_levels_below_base_agent():
    classes = _agent_classes()
    assert len(classes) >= 5, f"found only {classes}"
    deep = _depth_hits(classes)
    assert not deep, _report(deep, "agent classes more than two levels below BaseAgent",
                             "derive from BaseAgent (or one algorithm class) and share code through functions or "
                             "plain helper objects (e.g. tlrl.off_policy) instead of another base class.")


def test_the_composed_agent_is_at_most_two_levels_below_base_agent():
    """scripts/compose_agent.py, imported as a config names it (`compose_agent:DiscreteSAC`, scripts/ on the path)."""
    from tlrl.agent import BaseAgent

    path = os.path.join(ROOT, "scripts")
    if path not in sys.path:
        sys.path.insert(0, path)
    module = importlib.import_module("compose_agent")
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, BaseAgent)
               and c.__module__ == module.__name__]
    assert classes and not _depth_hits(classes), _depth_hits(classes)


# ----- (e) imports: layers, cycles -----------------------------------------------------------------
MODULES = {_module_name(rel): rel for rel in FILES}


def _resolve(rel: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(rel: str, module_level: bool) -> Iterator[Tuple[int, str]]:
    """(line, tlrl module) for each import in `rel`: only those run on import with `module_level`."""
    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and module_level:
                continue
            if isinstance(node, ast.If) and module_level and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(rel, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    yield node.lineno, sub if sub in MODULES else base
            else:
                yield from visit(ast.iter_child_nodes(node))

    for line, name in visit(_tree(rel).body):
        while name and name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES:
            yield line, name


#: The layers of docs/architecture.md, lowest first; a module imports only from its own layer or lower ones.
#: Everything not named here (core, spaces, compiled, buffers, layers, modules, envs, ...) is layer 0.
LAYERS = (
    ("data path and loop", ("tlrl.collector", "tlrl.loop", "tlrl.agent", "tlrl.off_policy", "tlrl.saved_agent")),
    ("runner sources", ("tlrl.runner",)),
    ("algorithms", ("tlrl.algorithms",)),
    ("drivers", ("tlrl.training", "tlrl.cli", "tlrl.checkpointing", "tlrl.export", "tlrl.run_dir", "tlrl.config",
                 "tlrl.config_schema", "tlrl.logger", "tlrl.plotting", "tlrl.run_lock", "tlrl.__main__",
                 "tlrl.sweep", "tlrl.runs_table")),
)


def _layer(module: str) -> int:
    for i, (_, names) in enumerate(LAYERS, 1):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return 0


def test_layers_import_only_from_their_own_or_lower_layers():
    """Every import, function-level ones too (the lazy `tlrl` package namespace excepted)."""
    names = ["core and building blocks"] + [name for name, _ in LAYERS]
    hits = [f"{rel}:{line}: {_module_name(rel)} ({names[_layer(_module_name(rel))]}) imports {name} "
            f"({names[_layer(name)]})" for rel in FILES if rel != "tlrl/__init__.py"
            for line, name in _imports(rel, module_level=False) if _layer(name) > _layer(_module_name(rel))]
    assert not hits, _report(hits, "imports from a higher layer (docs/architecture.md)",
                             "move the shared code down (into tlrl/core.py, tlrl/spaces.py, a building block), or "
                             "pass what is needed in from above (a source, a callback, an extension point).")


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycles_among_tlrl_modules():
    graph: Dict[str, Set[str]] = {}
    lines: Dict[Tuple[str, str], str] = {}
    for rel in FILES:
        here = _module_name(rel)
        for line, name in _imports(rel, module_level=True):
            if name != here:
                graph.setdefault(here, set()).add(name)
                lines.setdefault((here, name), f"{rel}:{line}")
    hits = []
    for component in _cycles(graph):
        members = set(component)
        hits.append(", ".join(f"{lines[(a, b)]} ({a} -> {b})" for a in component
                              for b in sorted(graph.get(a, ())) if b in members))
    assert not hits, _report(hits, "import cycles (module-level imports)",
                             "make the imports point one way: move what both need into a lower module, or import "
                             "inside the function that needs it only where the dependency really points down.")


def test_the_walk_sees_the_three_folders():
    """The walk covers the three folders (a guard against testing nothing)."""
    assert len(FILES) > 50 and any(f.startswith("algorithms") for f in FILES) and \
        any(f.startswith("envs") for f in FILES)


SAMPLE = """
from tlrl.runner.pools import _event
from ray._private import ray_constants
from tlrl.buffers import _io


class Buffer:
    def __init__(self):
        self._pos = 0

    @classmethod
    def load(cls):
        buf = cls()
        buf._pos = 1
        return buf._replace(pos=2)


def drive(agent, other, fn):
    agent._obs = None
    other._pos = 3
    getattr(fn.concrete, "_call_flat")
    getattr(agent, "replay", None)
    hasattr(agent.config, "tau")
    return self._fine
"""


def test_the_checks_find_what_they_should_and_nothing_else():
    """A sample (as tlrl/buffers/sample.py and as a driver) gives exactly the expected hits."""
    tree = ast.parse(SAMPLE)
    private = [h.split(": ", 1)[1] for h in _private_hits_in(tree, "tlrl/buffers/sample.py")]
    assert private == ["from tlrl.runner.pools import _event", "from ray._private import ray_constants",
                       "agent._obs", "other._pos", "getattr(fn.concrete, '_call_flat')"], private
    probes = [h.split(": ", 1)[1] for h in _probe_hits_in(tree, "tlrl/buffers/sample.py")]
    assert probes == ["getattr(agent, 'replay', None)"], probes
    probes = [h.split(": ", 1)[1] for h in _probe_hits_in(tree, "tlrl/training.py")]
    assert sorted(probes) == ["getattr(agent, 'replay', None)", "hasattr(agent.config, 'tau')"], probes
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"], ["e"]]
    from tlrl.agent import BaseAgent

    one = type("One", (BaseAgent,), {})
    two = type("Two", (one,), {})
    three = type("Three", (two,), {})
    assert [h.split(": ")[1] for h in _depth_hits([one, two, three])] == ["Three -> Two -> One -> BaseAgent"]
