"""tfcr's layering: no import cycles, and lower layers never import higher ones.

Every `import` in tfcr/ counts, the ones inside functions too: a lazy import hides a cycle
from Python, not from a reader.
"""

import ast
import os

import pytest

TFCR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfcr")

# Lower numbers are lower layers. A module may import its own subpackage and any lower
# layer; subpackages of one layer stay apart (an index knows no model and vice versa).
LAYERS = {
    "tfcr": 0, "tfcr.errors": 0, "tfcr.utils": 0,
    "tfcr.data": 1,
    "tfcr.models": 2, "tfcr.index": 2,
    "tfcr.metrics": 3,
    "tfcr.training": 4,
    "tfcr.export": 5,
    "tfcr.client": 6,
    "tfcr.comparison": 7,
    "tfcr.demo": 8, "tfcr.cli": 8,
}


def module_names():
  """{module name: path} of every .py file under tfcr/."""
  modules = {}
  for root, _, files in os.walk(TFCR):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        parts = os.path.relpath(path, os.path.dirname(TFCR))[:-3].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        modules[".".join(parts)] = path
  return modules


def imports_of(path: str, module: str, known) -> set:
  """The tfcr modules `path` imports (a `from package import name` counts as the
  submodule when `name` is one, else as the package)."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.split(".")[0] == "tfcr")
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      if base.split(".")[0] != "tfcr":
        continue
      for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.add(candidate if candidate in known else base)
  return {m for m in found if m != module}


def import_graph():
  modules = module_names()
  return {m: imports_of(p, m, modules) for m, p in modules.items()}


def find_cycle(graph):
  """One import cycle as a list of modules (first == last), or None. Depth-first search
  with the three colours; iterative, so deep graphs do not hit the recursion limit."""
  state = {}
  for start in sorted(graph):
    if state.get(start):
      continue
    stack = [(start, iter(sorted(graph.get(start, ()))))]
    path = [start]
    state[start] = "open"
    while stack:
      node, children = stack[-1]
      child = next(children, None)
      if child is None:
        state[node] = "done"
        stack.pop()
        path.pop()
      elif state.get(child) == "open":
        return path[path.index(child):] + [child]
      elif child not in state:
        state[child] = "open"
        stack.append((child, iter(sorted(graph.get(child, ())))))
        path.append(child)
  return None


def layer_of(module: str):
  """(layer, owner) of the longest LAYERS key that is `module` or a package of it."""
  parts = module.split(".")
  for n in range(len(parts), 0, -1):
    owner = ".".join(parts[:n])
    if owner in LAYERS:
      return LAYERS[owner], owner
  raise KeyError(module)


def test_cycle_finder_finds_a_planted_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
  assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_the_import_walk_sees_lazy_and_relative_imports(tmp_path):
  source = tmp_path / "m.py"
  source.write_text("def f():\n  from tfcr.training import loop\n  import tfcr.errors\n"
                    "from . import sibling\n")
  known = {"tfcr.training", "tfcr.training.loop", "tfcr.errors", "tfcr.x.sibling"}
  assert imports_of(str(source), "tfcr.x.m", known) == {"tfcr.training.loop", "tfcr.errors",
                                                         "tfcr.x.sibling"}


def test_no_import_cycles():
  graph = import_graph()
  assert len(graph) > 40  # the walk found the package
  cycle = find_cycle(graph)
  assert cycle is None, " -> ".join(cycle)


def test_every_module_has_a_layer():
  for module in import_graph():
    layer_of(module)


@pytest.mark.parametrize("module", sorted(module_names()))
def test_lower_layers_never_import_higher_ones(module):
  graph = import_graph()
  layer, owner = layer_of(module)
  for imported in graph[module]:
    their_layer, their_owner = layer_of(imported)
    assert their_layer < layer or their_owner == owner or their_owner in ("tfcr",), (
        f"{module} (layer {layer}, {owner}) imports {imported} (layer {their_layer}, "
        f"{their_owner})")
