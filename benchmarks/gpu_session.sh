#!/usr/bin/env bash
# One GPU session (issue 11): the GPU benchmark, then `reproduce --preset gpu` with the number of workers the
# benchmark measured fastest, for the time left.  Run from the repository root on the GPU machine:
#   DATADIET_DATA=.gpu-data OUT=/some/folder bash benchmarks/gpu_session.sh [reproduce seconds]
# Everything small that it measures lands in $OUT; the results folder stays in results/gpu (it resumes).
set -u
export PYTHONPATH=src
OUT=${OUT:?set OUT}
REPRO_SECONDS=${1:-300}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c \
  "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0])"; \
  nproc; } > "$OUT/machine.txt" 2>&1
timeout 120 python3 benchmarks/check_gpu.py > "$OUT/check.txt" 2>&1; echo "check rc=$?" >> "$OUT/check.txt"
if [ ! -f "$OUT/bench.json" ] || [ "${RERUN_BENCH:-0}" = 1 ]; then
  timeout "${BENCH_SECONDS:-260}" python3 benchmarks/bench_gpu.py --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
  echo "bench rc=$?" >> "$OUT/bench.txt"
fi
# The sweep table's fastest graphed K (1 if the table is missing).
WORKERS=$(python3 - "$OUT/bench.json" <<'PY'
import json, re, sys
try:
    rows = json.load(open(sys.argv[1])).get("sweep", [])
except Exception:
    rows = []
best = (0.0, 1)
for row in rows:
    m = re.match(r"\| graphed, K = (\d+) \| [\d.]+ \| ([\d,]+) \|", row)
    if m:
        best = max(best, (float(m.group(2).replace(",", "")), int(m.group(1))))
print(best[1])
PY
)
echo "workers chosen from the sweep table: $WORKERS" | tee -a "$OUT/reproduce.log"
START=$(date +%s)
timeout "$REPRO_SECONDS" python3 -m datadiet reproduce --preset gpu --out results/gpu --workers "$WORKERS" \
  >> "$OUT/reproduce.log" 2>&1
echo "reproduce rc=$? wall=$(( $(date +%s) - START ))s" >> "$OUT/reproduce.log"
# Bring back what is small: the run records, the config, the report if it was reached.
mkdir -p "$OUT/gpu"
cp -r results/gpu/sweep/runs results/gpu/reproduce "$OUT/gpu/" 2>/dev/null   # the workspace layout
cp results/gpu/report.md "$OUT/gpu/" 2>/dev/null
du -sh results/gpu >> "$OUT/reproduce.log" 2>&1
exit 0
