"""Small units: no class in ebmlib over 200 lines and no function over 80, docstrings included."""

import ast
from pathlib import Path

import ebmlib

MAX_CLASS, MAX_FUNCTION = 200, 80
ROOT = Path(ebmlib.__file__).parent


def _units():
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT.parent), node


def test_no_class_or_function_is_too_long():
    too_long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _units()
        if node.end_lineno - node.lineno + 1
        > (MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION)
    ]
    assert not too_long, "split these:\n" + "\n".join(too_long)


def test_the_check_sees_the_library():
    """The walk above is not vacuous: it finds the RBM class and the training loop."""
    names = {node.name for _, node in _units()}
    assert {"BernoulliRBM", "train", "run_loop", "sample"} <= names
