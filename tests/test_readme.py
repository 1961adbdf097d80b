"""The README's Python examples run as written (in a fresh interpreter, in a temp folder)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples_and_two_setup_commands():
    assert len(BLOCKS) >= 2
    bash = re.findall(r"```bash\n(.*?)```", README.split("## Set up")[1].split("\n## ")[0], flags=re.S)
    assert len(bash) == 2, "the Set up section keeps exactly two commands"
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert bash[1].strip() in ci, ".ci/run must run the README's test command verbatim"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path):
    code = BLOCKS[index]
    if "mypkg" in code:
        pytest.skip("illustrates a user package that does not exist here (tests/envs cover it)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, f"README example {index} failed:\n{code}\n{out.stderr[-3000:]}"
