"""The library reads in layers: import-linter's contract (pyproject.toml) holds, and
``import ebmlib`` stays light."""

import subprocess
import sys
from pathlib import Path


def test_the_layers_import_only_downward():
    from importlinter.cli import lint_imports

    # the contract in pyproject.toml is exhaustive: a new module must be placed in a layer
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert lint_imports(config_filename=str(pyproject)) == 0


def test_import_ebmlib_loads_neither_matplotlib_nor_the_chapter_helpers():
    code = (
        "import sys, ebmlib; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('matplotlib', 'ebmlib.book', 'sklearn', 'dask'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
