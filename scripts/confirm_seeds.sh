#!/usr/bin/env bash
# Train one config on several seeds, two runs at a time, and print each seed's final evaluation: how a setting
# found by a sweep is confirmed on seeds the search never used (BENCHMARKS.md, "DQN CartPole-v1 on every seed").
#   bash scripts/confirm_seeds.sh CONFIG OUT "10 11 12" [--set KEY=VALUE ...]
set -euo pipefail
config="$1"; out="$2"; seeds="$3"; shift 3
mkdir -p "$out"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
for seed in $seeds; do echo "$seed"; done |
    xargs -P "${JOBS:-2}" -I{} sh -c 'config="$0"; out="$1"; shift; tlrl train "$config" --seed {} \
        --run-dir "$out/seed_{}" --no-progress "$@" > "$out/seed_{}.log" 2>&1 ||
        echo "seed {} failed: see $out/seed_{}.log"' "$config" "$out" "$@"
for seed in $seeds; do
    python - "$out/seed_$seed/summary.json" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"seed {sys.argv[2]}: eval {s['eval_return_mean']:.1f} +- {s['eval_return_std']:.1f} ({s['wall_seconds']:.0f} s)")
PY
done
