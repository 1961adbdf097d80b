"""The `>>>` examples in the buffer docstrings run and hold."""
import doctest
import importlib

import pytest

MODULES = ["replay", "prioritized", "sum_tree", "nstep", "gae", "rollout"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"tlrl.buffers.{name}")  # `tlrl.buffers.gae` the attribute is the function
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
