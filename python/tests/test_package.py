"""The package as installed: a typed, abi3 module whose stubs describe
every method the class has."""

import ast
import inspect
from pathlib import Path

import swarm_metrics
from swarm_metrics import MetricsStorage, _native

PACKAGE = Path(swarm_metrics.__file__).parent


def stub_methods():
    tree = ast.parse((PACKAGE / "_native.pyi").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MetricsStorage"]
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def test_the_stubs_name_every_method_and_nothing_else():
    public = {name for name in dir(MetricsStorage) if not name.startswith("_")}
    stubbed = {name for name in stub_methods() if not name.startswith("_")}
    assert stubbed == public


def test_the_stubs_agree_with_the_signatures():
    for name, node in stub_methods().items():
        if name.startswith("_") or not callable(getattr(MetricsStorage, name)):
            continue
        runtime = inspect.signature(getattr(MetricsStorage, name))
        stub_args = [a.arg for a in node.args.args + node.args.kwonlyargs]
        if node.args.vararg:
            stub_args.append(node.args.vararg.arg)
        if node.args.kwarg:
            stub_args.append(node.args.kwarg.arg)
        assert stub_args == list(runtime.parameters), name


def test_typed_and_built_for_the_stable_abi():
    assert (PACKAGE / "py.typed").exists()
    assert Path(_native.__file__).name.endswith(".abi3.so")
    assert swarm_metrics.__version__ == _native.__version__
    assert swarm_metrics.SCHEMA_VERSION >= 1


def test_every_method_is_documented():
    for name in dir(MetricsStorage):
        if not name.startswith("_"):
            assert getattr(MetricsStorage, name).__doc__, name
