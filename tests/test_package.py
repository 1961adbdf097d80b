"""The editable install maps the import names onto the repository folders; docstring examples run."""
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, folder", [("tlrl", "tlrl"), ("tlrl.algorithms", "algorithms"),
                                          ("tlrl.envs", "envs")])
def test_import_names_resolve_to_the_repository_folders(name, folder):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve() == REPO / folder / "__init__.py"


def test_layers_and_modules_packages_live_under_tlrl():
    import tlrl.layers
    import tlrl.modules

    assert Path(tlrl.layers.__file__).resolve().parent == REPO / "tlrl" / "layers"
    assert Path(tlrl.modules.__file__).resolve().parent == REPO / "tlrl" / "modules"


def _submodules(package_name):
    package = importlib.import_module(package_name)
    names = [package_name] + [f"{package_name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return [importlib.import_module(n) for n in names]


@pytest.mark.parametrize("package", ["tlrl.layers", "tlrl.modules"])
def test_docstring_examples_run(package):
    attempted = 0
    for module in _submodules(package):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, f"{result.failed} doctest failures in {module.__name__}"
        attempted += result.attempted
    assert attempted >= 5  # the examples exist and ran


@pytest.mark.parametrize("name", ["tlrl.spaces", "tlrl.compiled", "tlrl.algorithms"])
def test_spine_docstring_examples_run(name):
    """The space boundary, the compiled-call path and the algorithm registry show their use in examples."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0, f"{name}: {result}"


def test_setup_cfg_lists_every_subpackage():
    """A non-editable `pip install .` ships only listed packages: every folder with __init__.py must be listed."""
    import configparser
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(root, "setup.cfg"))
    listed = set(cfg["options"]["packages"].split())
    for folder, name in (("tlrl", "tlrl"), ("algorithms", "tlrl.algorithms"), ("envs", "tlrl.envs")):
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            if "__init__.py" in files:
                rel = os.path.relpath(dirpath, os.path.join(root, folder))
                package = name if rel == "." else name + "." + rel.replace(os.sep, ".")
                assert package in listed, f"setup.cfg [options] packages lacks {package}"
    folders = {"tlrl": "tlrl", "tlrl.algorithms": "algorithms", "tlrl.envs": "envs"}
    for package in listed:  # and lists no package that is gone (pip install . would fail)
        top = max((k for k in folders if package == k or package.startswith(k + ".")), key=len)
        folder = os.path.join(root, folders[top], *package[len(top):].split(".")[1:])
        assert os.path.isfile(os.path.join(folder, "__init__.py")), f"setup.cfg lists {package}, which does not exist"
