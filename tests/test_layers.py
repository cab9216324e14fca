"""The package's three layers and their rules, read from the import graph.

core (pure Keras/TensorFlow model code) imports nothing above it; run (settings, data, training,
run directory, export, loading) never imports the apps (CLI, scoring, Beam, serving, client); no
module imports itself through a circle. Every import counts, those inside functions too.
"""

import ast
from pathlib import Path

import pytest

from keras_sentiment.core.recurrent import POOLINGS, ModelConfig
from keras_sentiment.run.settings import BY_NAME

PACKAGE = Path(__file__).resolve().parents[1] / "keras_sentiment"
LAYERS = ("core", "run", "apps")  # lowest first: each may import only its own layer and those before it


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, known):
    """The package's modules that `path` imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def layer_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


GRAPH = import_graph()


def test_the_graph_sees_the_layers():
    layers = {layer_of(m) for m in GRAPH}
    assert set(LAYERS) <= layers, layers
    assert GRAPH["keras_sentiment.run.training"] >= {"keras_sentiment.run.teacher", "keras_sentiment.core.scorer"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_layer_above_its_own(module):
    own = layer_of(module)
    if own is None:  # the package's __init__: the public API may use every layer
        return
    above = set(LAYERS[LAYERS.index(own) + 1:])
    offending = sorted(m for m in GRAPH[module] if layer_of(m) in above)
    assert not offending, f"{module} ({own}) imports {offending}"


def test_no_import_circle():
    circles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_a_circle_and_an_upward_import_would_be_caught(tmp_path):
    """The checks above read real imports: a planted circle and an upward import show up."""
    package = tmp_path / "keras_sentiment"
    (package / "core").mkdir(parents=True)
    (package / "run").mkdir()
    (package / "core" / "a.py").write_text("def f():\n    from keras_sentiment.run import b\n")
    (package / "run" / "b.py").write_text("import keras_sentiment.core.a\n")
    paths = {module_name_under(package, p): p for p in package.rglob("*.py")}
    graph = {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    assert graph["keras_sentiment.core.a"] == {"keras_sentiment.run.b"}
    assert graph["keras_sentiment.run.b"] == {"keras_sentiment.core.a"}


def module_name_under(package, path):
    return ".".join(path.relative_to(package.parent).with_suffix("").parts)


def test_the_model_code_defaults_agree_with_the_settings_table():
    """core is explicit and imports no settings; its defaults must still be the table's seed design."""
    config = ModelConfig()
    for name in ("vocab_size", "embedding_dim", "hidden_dim", "num_layers", "dropout", "pooling"):
        assert getattr(config, name) == BY_NAME[name].default, name
    assert POOLINGS == BY_NAME["pooling"].choices
