"""A sweep file is validated before anything runs: each mistake is refused with the key, its line and the fix."""
import os

import pytest

from tlrl.cli import main
from tlrl.sweep import SweepError, load_sweep

from .helpers import write_sweep

GOOD_SPACE = """\
search_space:
  learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
  n_epochs: {type: int, low: 1, high: 4}
budget: {n_trials: 3}
"""

BROKEN = {
    "unknown top-level key": ("serch_space: {}\n", ["line 2", "unknown key 'serch_space'", "Did you mean 'search_space'"]),
    "unknown config key": ("search_space:\n  lerning_rate: {type: uniform, low: 0.1, high: 0.2}\nbudget: {n_trials: 2}\n",
                           ["line 3", "search_space.lerning_rate", "no hyperparameter 'lerning_rate'",
                            "Did you mean 'learning_rate'"]),
    "unknown section key": ("search_space:\n  env.kwrgs.size: {type: int, low: 1, high: 3}\nbudget: {n_trials: 2}\n",
                            ["search_space.env.kwrgs.size", "unknown key 'kwrgs'"]),
    "low above high": ("search_space:\n  learning_rate: {type: loguniform, low: 1.0e-2, high: 1.0e-3}\n"
                       "budget: {n_trials: 2}\n", ["line 3", "search_space.learning_rate", "low (0.01) must be below "
                                                   "high (0.001); swap them"]),
    "empty choices": ("search_space:\n  net_arch: {type: categorical, choices: []}\nbudget: {n_trials: 2}\n",
                      ["search_space.net_arch", "choices is empty"]),
    "a float for an integer key": ("search_space:\n  n_epochs: {type: uniform, low: 1, high: 3}\nbudget: {n_trials: 2}\n",
                                   ["search_space.n_epochs", "must be an integer"]),
    "a value out of the key's range": ("search_space:\n  gae_lambda: {type: uniform, low: 0.5, high: 1.5}\n"
                                       "budget: {n_trials: 2}\n", ["search_space.gae_lambda", "1.5", "gae_lambda"]),
    "log scale from zero": ("search_space:\n  learning_rate: {type: loguniform, low: 0, high: 1.0e-3}\n"
                            "budget: {n_trials: 2}\n", ["a log scale needs low > 0"]),
    "unknown distribution": ("search_space:\n  learning_rate: {type: logunifrom, low: 1.0e-4, high: 1.0e-3}\n"
                             "budget: {n_trials: 2}\n", ["search_space.learning_rate.type", "Did you mean 'loguniform'"]),
    "a distribution's unknown key": ("search_space:\n  n_epochs: {type: int, low: 1, hihg: 3}\nbudget: {n_trials: 2}\n",
                                     ["unknown key 'hihg'", "Did you mean 'high'"]),
    "the seed swept": ("search_space:\n  seed: {type: int, low: 0, high: 3}\nbudget: {n_trials: 2}\n",
                       ["seeds are not sampled", "seeds:"]),
    "a key both swept and overridden": ("overrides: {learning_rate: 0.001}\n" + GOOD_SPACE,
                                        ["search_space.learning_rate is also set under overrides"]),
    "grid over a continuous range": (GOOD_SPACE + "sampler: {type: grid}\n",
                                     ["sampler grid needs a finite set", "search_space.learning_rate"]),
    "best eval without periodic evals": (GOOD_SPACE + "objective: {metric: best}\n",
                                         ["objective.metric best", "eval.eval_freq"]),
    "a wrong aggregate": (GOOD_SPACE + "objective: {aggregate: median}\n",
                          ["objective.aggregate must be one of 'mean', 'worst'"]),
    "no budget": ("search_space:\n  n_epochs: {type: int, low: 1, high: 3}\n", ["budget needs n_trials or timeout"]),
    "bad seeds": (GOOD_SPACE + "seeds: [0, 0]\n", ["seeds must be a count", "distinct"]),
    "threshold without bounds": (GOOD_SPACE + "pruner: {type: threshold}\n", ["pruner threshold needs lower or upper"]),
    "grace shorter than a heartbeat": (GOOD_SPACE + "failures: {heartbeat_interval: 5, grace_period: 5}\n",
                                       ["failures.grace_period (5) must exceed heartbeat_interval (5)"]),
    "a broken override": ("overrides: {total_steps: many}\n" + GOOD_SPACE, ["overrides", "total_steps"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_sweep_file_is_refused_naming_the_key_and_the_fix(case, tmp_path):
    body, expected = BROKEN[case]
    path = write_sweep(tmp_path, body)
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert message.startswith(path), message
    for text in expected:
        assert text in message, f"{case}: {text!r} not in: {message}"


def test_a_pair_of_keys_is_checked_together_before_a_value_is_refused(tmp_path):
    """n_steps 8 alone breaks batch_size 64 <= n_steps * n_envs, but fits with batch_size 16: accepted.
    batch_size 1000 fits no n_steps of the space: refused."""
    space = "search_space:\n  n_steps: {type: categorical, choices: [8, 64]}\n  batch_size: {type: categorical, " \
            "choices: [16, %s]}\nbudget: {n_trials: 2}\n"
    assert load_sweep(write_sweep(tmp_path, space % 128)).search_space["n_steps"].choices == [8, 64]
    with pytest.raises(SweepError, match=r"search_space.batch_size: the value 1000 does not fit .*batch_size \(1000\)"):
        load_sweep(write_sweep(tmp_path, space % 1000))


def test_a_missing_base_config_is_named(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("base: nowhere.yaml\n" + GOOD_SPACE)
    with pytest.raises(SweepError, match="cannot read the base config .*nowhere.yaml"):
        load_sweep(str(path))


def test_a_valid_sweep_file_resolves_its_defaults(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, GOOD_SPACE + "seeds: 3\noverrides: {total_steps: 2048}\n"))
    assert spec.name == "sweep" and spec.seeds == [0, 1, 2] and spec.base_config.total_steps == 2048
    assert (spec.objective.metric, spec.objective.aggregate, spec.sampler.type, spec.pruner.type) == \
        ("final", "mean", "tpe", "median")
    assert spec.trial_sets({"learning_rate": 1e-4, "net_arch": [64, 64]}) == \
        ["total_steps=2048", "learning_rate=0.0001", "net_arch=[64, 64]"]


def test_tlrl_sweep_refuses_a_broken_file_before_making_anything(tmp_path, capsys):
    path = write_sweep(tmp_path, "search_space:\n  lerning_rate: {type: uniform, low: 0.1, high: 0.2}\n"
                                 "budget: {n_trials: 2}\n")
    out = tmp_path / "out"
    assert main(["sweep", path, "--out", str(out)]) == 2
    assert "search_space.lerning_rate" in capsys.readouterr().err
    assert not os.path.exists(out)


def _yaml_blocks(path, section=None):
    import re

    text = open(path).read()
    if section:
        text = text.split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def test_the_sweep_files_of_the_docs_and_the_readme_are_valid(tmp_path):
    import shutil

    from .helpers import ROOT

    shutil.copytree(os.path.join(ROOT, "configs"), tmp_path / "configs")
    blocks = _yaml_blocks(os.path.join(ROOT, "docs", "sweeps.md")) + \
        _yaml_blocks(os.path.join(ROOT, "README.md"), "## Sweeps")
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        path = tmp_path / "configs" / f"doc_{i}.yaml"
        path.write_text(block)
        assert load_sweep(str(path)).search_space
