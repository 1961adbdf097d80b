"""The `>>>` examples in tlrl.envs run, and the custom-env example script works without training."""
import doctest
import importlib
import pathlib
import runpy

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "custom_env_example.py"


@pytest.mark.parametrize("module", ["tlrl.envs.gridworld", "tlrl.envs.make", "tlrl.envs.checks",
                                    "tlrl.envs.wrappers"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_custom_env_example_checks_and_vectorizes_its_env(capsys):
    namespace = runpy.run_path(str(SCRIPT), run_name="custom_env_example")
    namespace["check_and_vectorize"](n_envs=2)
    out = capsys.readouterr().out
    assert "check_env: CorridorEnv follows the Gymnasium API" in out
    assert "vector env: 2 envs, observations (2, 2)" in out
