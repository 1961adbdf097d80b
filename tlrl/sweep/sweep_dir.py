"""A sweep directory: what it holds, how a new one is made, and how a sweep is found again (`--resume`).

    DIR/sweep.yaml        the validated sweep (its config named base.yaml): what every worker loads
    DIR/base.yaml         the config the sweep tunes, as it was given
    DIR/sweep.json        the study's name, its storage (null: DIR/study.db; a password is never written)
    DIR/study.db          the SQLite storage (unless --storage named a server)
    DIR/trials/NNNN/seed_S/   one ordinary run directory per trial and seed (`tlrl eval/export/plot/train
                          --resume` work on it)
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from typing import Any, Dict, Optional

import yaml

from tlrl.durable import write_text
from tlrl.sweep.spec import SweepError, SweepSpec, load_sweep
from tlrl.sweep.study import check_url, default_storage, masked

SWEEP_FILE = "sweep.yaml"
BASE_FILE = "base.yaml"
INFO_FILE = "sweep.json"
TRIALS_DIR = "trials"


def is_sweep_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, INFO_FILE))


def trial_run_dir(sweep_dir: str, number: int, seed: int) -> str:
    """The run directory of trial `number`, seed `seed`."""
    return os.path.join(sweep_dir, TRIALS_DIR, f"{number:04d}", f"seed_{seed}")


def default_sweep_dir(name: str, root: str = "sweeps") -> str:
    """`sweeps/<name>_<timestamp>` (a fresh one)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = os.path.join(root, f"{name}_{stamp}"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(root, f"{name}_{stamp}-{n}")
    return path


def prepare(spec: SweepSpec, out: Optional[str], storage: Optional[str]) -> str:
    """The sweep directory for `spec`: `out` (default a fresh `sweeps/<name>_<timestamp>`) made now, or joined
    if it holds the same sweep on the same storage; SweepError if it holds anything else."""
    out = out or default_sweep_dir(spec.name)
    digest = hashlib.sha256(spec.fingerprint().encode()).hexdigest()
    if os.path.exists(out) and not os.path.isdir(out):
        raise SweepError(f"--out {out} exists and is a file, not a directory")
    if is_sweep_dir(out):
        info = read_info(out)
        if info.get("fingerprint") != digest:
            raise SweepError(f"{out} holds another sweep ({info.get('study')!r}, made from a different sweep file or "
                             f"config); continue it with `tlrl sweep --resume {out}` or choose another --out")
        if (info.get("storage") or None) != (masked(storage) if storage else None):
            raise SweepError(f"{out} keeps its study in {info.get('storage') or 'its study.db'}, not "
                             f"{masked(storage) if storage else 'study.db'}; give the same --storage or another --out")
        return out
    if os.path.isdir(out) and os.listdir(out):
        raise SweepError(f"--out {out} already exists and holds files that are not a sweep; choose another --out")
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, BASE_FILE), spec.base_text)
    write_text(os.path.join(out, SWEEP_FILE), yaml.safe_dump(spec.to_dict(), sort_keys=False))
    info = {"study": spec.name, "storage": masked(storage) if storage else None, "fingerprint": digest,
            "sweep_file": os.path.abspath(spec.source), "created": datetime.datetime.now().isoformat(timespec="seconds")}
    write_text(os.path.join(out, INFO_FILE), json.dumps(info, indent=2) + "\n")  # last: it marks a sweep directory
    return out


def read_info(sweep_dir: str) -> Dict[str, Any]:
    path = os.path.join(sweep_dir, INFO_FILE)
    try:
        with open(path) as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("study"), str):
        raise SweepError(f"{path} is not what tlrl sweep writes (a mapping with the study's name)")
    return info


def load_dir(sweep_dir: str) -> SweepSpec:
    """The sweep of an existing sweep directory, validated again."""
    if not is_sweep_dir(sweep_dir):
        what = "does not exist" if not os.path.exists(sweep_dir) else f"has no {INFO_FILE}, so it is not a sweep"
        raise SweepError(f"cannot use {sweep_dir} as a sweep directory: it {what}")
    return load_sweep(os.path.join(sweep_dir, SWEEP_FILE))


def storage_of(sweep_dir: str, given: Optional[str] = None) -> str:
    """The storage URL of a sweep directory: `given` (--storage), else the one it records, else its study.db."""
    if given:
        return check_url(given)
    stored = read_info(sweep_dir).get("storage")
    if not stored:
        return default_storage(sweep_dir)
    if "***" in stored:
        raise SweepError(f"{sweep_dir} keeps its study in {stored}; give --storage with the password again (it is "
                         f"never written to the sweep directory)")
    return check_url(stored)
