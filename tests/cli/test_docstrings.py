"""The docstring examples of the CLI-side modules run."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["tlrl.config", "tlrl.logger", "tlrl.checkpointing", "tlrl.training", "tlrl.run_dir", "tlrl.export",
                                  "tlrl.plotting", "tlrl.cli"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
