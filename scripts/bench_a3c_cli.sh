#!/usr/bin/env bash
# A3C through `tlrl train` (configs/a3c_cartpole.yaml, 300k steps): 1 vs 2 workers on the process and Ray backends,
# ROUNDS rounds (default 2). Per run it prints the whole command's seconds (Python and TF imports included),
# summary.json's training wall (worker start-up after training starts included) and when the first 2k steps were
# logged. Run it on a quiet machine: bash scripts/bench_a3c_cli.sh [ROUNDS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
rounds="${1:-2}"
out="${2:-$(mktemp -d)}"
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for b in process ray; do
    for w in 1 2; do
      d="$out/a3c_${b}_${w}_r$round"
      rm -rf "$d"
      t0=$(date +%s.%N)
      tlrl train configs/a3c_cartpole.yaml --set runner.backend=$b --set runner.workers=$w --run-dir "$d" \
        --set log.progress=false > "$d.log" 2>&1
      t1=$(date +%s.%N)
      python - "$d" "$b" "$w" "$t0" "$t1" "$round" <<'PY'
import csv, json, sys
d, b, w, t0, t1, r = sys.argv[1:]
s = json.load(open(d + "/summary.json"))
rows = list(csv.DictReader(open(d + "/metrics.csv")))
load = open("/proc/loadavg").read().split()[0]
print(f"{b} workers={w} round {r}: command {float(t1) - float(t0):.1f} s, training wall {s['wall_seconds']:.1f} s, "
      f"first {rows[0]['num_timesteps']} steps at {float(rows[0]['wall']):.2f} s, eval {s['eval_return_mean']:.1f}, "
      f"load {load}", flush=True)
PY
    done
  done
done
