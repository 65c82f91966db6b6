#!/usr/bin/env bash
# gpu_check.sh: one prepared check of lrpnet on a GPU machine (an H100 or H200 with CuPy 14, Numba,
# PyTorch, pytest, hypothesis and tqdm preinstalled, Python 3.12, no network, no ../shared).
#
# Steps, each under its own time limit, all within one overall deadline (TOTAL_S, 460 s: the whole
# script ends in under 8 minutes even if a step hangs):
#   1. the CuPy kernel tests, tests/test_kernels_cupy.py (kernels.log, at most KERNELS_S=60 s)
#   2. a smoke sweep on the GPU: deep, rlstm, convdeep on mnist-maj, the smoke profile (1 epoch) on
#      600 / 100 / 100 train / val / test samples, 50 explained, outputs in /tmp/gpu-check-sweep
#                                                     (sweep.log, at most SWEEP_S=90 s)
#   3. the test suite under the CuPy backend          (tests.log,   at most TESTS_S=200 s)
#   4. python benchmarks/backends.py --quick          (backends.md, at most BENCH_S=180 s; the table
#      is rewritten after every row, so a cut run keeps its rows)
# and writes summary.md (GPU, date, the exact commands, each step's status, counts and seconds, the
# benchmark table) and env.txt (nvidia-smi, versions, backend.gpu_status()): seven flat files in $OUT
# (the device tool returns at most 8, at most 2 folders deep), bench.log holding the benchmark's
# output and errors.
#
# How to run it, from the repository root:
#   on the dev machine, once, put MNIST where the run can read it (/.device/ is git-ignored;
#   fashion-mnist is not needed):
#       mkdir -p .device/data && cp -r ../shared/data/mnist .device/data/
#   on the device machine (the device tool's run; OUT is set by the tool):
#       command: bash benchmarks/gpu_check.sh      carry: [".device"]      timeout_s: 600
#   Without OUT set, the files go to gpu-check-out/ (git-ignored).
#
# CPU rehearsal (no GPU): bash benchmarks/gpu_check.sh --cpu
#   runs every step with the NumPy backend (LRPNET_BACKEND=numpy, sweep.py --device cpu, the GPU
#   columns of the benchmark left empty), to check the script itself on a machine without a GPU.
#
# Nothing is installed: lrpnet runs from the working tree through PYTHONPATH (setup.py's extras pin
# torch==2.13, which must not replace the machine's torch). Overrides, as environment variables:
#   PYTHON (default python3), TOTAL_S, TESTS_S, KERNELS_S, SWEEP_S, BENCH_S (seconds),
#   BENCH_ARGS (default --quick), DATA (default $PWD/.device/data).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=gpu
case "${1:-}" in
  --cpu) MODE=cpu ;;
  "") ;;
  -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_check.sh: unknown argument '$1' (expected --cpu or nothing)" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
TOTAL_S=${TOTAL_S:-460}
TESTS_S=${TESTS_S:-200}
KERNELS_S=${KERNELS_S:-60}
SWEEP_S=${SWEEP_S:-90}
BENCH_S=${BENCH_S:-180}
BENCH_ARGS=${BENCH_ARGS:---quick}
DATA=${DATA:-$ROOT/.device/data}
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
SWEEP_DIR=/tmp/gpu-check-sweep

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ "$MODE" = gpu ]; then BACKEND=cupy; DEVICE=gpu; else BACKEND=numpy; DEVICE=cpu; fi

DEADLINE=$((SECONDS + TOTAL_S))
STEPS=()          # one summary row per step

# run_step NAME LIMIT LOG COMMAND...: runs COMMAND under `timeout`, at most LIMIT seconds and never past
# the deadline; its output goes to the terminal and to LOG. Records status, counts and seconds.
run_step() {
  local name=$1 limit=$2 log=$3; shift 3
  local left=$((DEADLINE - SECONDS - 10))
  [ "$left" -lt "$limit" ] && limit=$left
  echo
  echo "=== $name: $* (limit ${limit} s)"
  if [ "$limit" -lt 15 ]; then
    echo "skipped: no time left before the deadline" | tee "$OUT/$log"
    STEPS+=("| $name | skipped: no time left | | 0 | \`$*\` |")
    return
  fi
  local start=$SECONDS rc
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$log"
  rc=${PIPESTATUS[0]}
  local took=$((SECONDS - start)) status counts
  case $rc in
    0) status=passed ;;
    124|137) status="timed out after ${limit} s" ;;
    5) status="no tests ran" ;;
    *) status="failed (exit $rc)" ;;
  esac
  counts=$(grep -E '[0-9]+ (passed|failed|errors?|skipped)' "$OUT/$log" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')
  STEPS+=("| $name | $status | ${counts} | $took | \`$*\` |")
}

# -- environment -----------------------------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "mode: $MODE (LRPNET_BACKEND=$BACKEND, sweep --device $DEVICE)"
  echo "host: $(uname -srm), $(nproc) CPUs"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu --format=csv
    nvidia-smi
  else
    echo "nvidia-smi: not found"
  fi
  timeout 60 "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for mod in ("numpy", "numba", "cupy", "torch", "pytest", "hypothesis", "tqdm", "pytest_timeout"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "(no __version__)"))
    except Exception as e:
        print(mod, "absent:", type(e).__name__, e)
try:
    import cupy
    rt = cupy.cuda.runtime
    v = lambda n: f"{n // 1000}.{n % 1000 // 10}"
    p = rt.getDeviceProperties(0)
    print("cupy device:", p["name"].decode() if isinstance(p["name"], bytes) else p["name"],
          "| CUDA runtime", v(rt.runtimeGetVersion()), "| driver supports CUDA", v(rt.driverGetVersion()))
except Exception as e:
    print("cupy device: none:", type(e).__name__, e)
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(), torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:
    print("torch cuda: ", type(e).__name__, e)
from lrpnet import backend
print("backend.gpu_status():", backend.gpu_status())
print("backend.available():", backend.available())
EOF
} 2>&1 | tee "$OUT/env.txt"

TIMEOUT_FLAG=()
if "$PY" -c 'import pytest_timeout' 2>/dev/null; then TIMEOUT_FLAG=(--timeout=120); fi

# -- 1. the CuPy kernel tests (first: quick, and they say whether the kernels compute their references) ----------------------------------------------------------------------
if [ -f tests/test_kernels_cupy.py ]; then
  run_step "1. CuPy kernel tests" "$KERNELS_S" kernels.log \
    env LRPNET_BACKEND=$BACKEND "$PY" -m pytest -q "${TIMEOUT_FLAG[@]}" tests/test_kernels_cupy.py
else
  echo "tests/test_kernels_cupy.py does not exist (yet): step 1 skipped" | tee "$OUT/kernels.log"
  STEPS+=("| 1. CuPy kernel tests | skipped: tests/test_kernels_cupy.py absent | | 0 | |")
fi

# -- 2. a smoke sweep ------------------------------------------------------------------------------
if [ -d "$DATA/mnist" ]; then
  rm -rf "$SWEEP_DIR"
  run_step "2. smoke sweep" "$SWEEP_S" sweep.log \
    "$PY" experiments/sweep.py --device $DEVICE --profile smoke --archs deep,rlstm,convdeep \
      --datasets mnist-maj --train-size 600 --val-size 100 --test-size 100 --explain-size 50 \
      --workers 1 --no-progress --data-dir "$DATA" --out "$SWEEP_DIR"
  if [ -f "$SWEEP_DIR/report.md" ]; then
    { echo; echo "=== $SWEEP_DIR/report.md"; cat "$SWEEP_DIR/report.md"; } >> "$OUT/sweep.log"
  fi
else
  echo "no MNIST under $DATA: step 2 skipped (see this script's header: cp -r ../shared/data/mnist .device/data/)" \
    | tee "$OUT/sweep.log"
  STEPS+=("| 2. smoke sweep | skipped: no $DATA/mnist | | 0 | |")
fi

# -- 3. the test suite (whole, so one run shows every failure; the slowest tests are listed) -----------------------------------------------------------------------------
run_step "3. test suite" "$TESTS_S" tests.log \
  env LRPNET_BACKEND=$BACKEND LRPNET_DATA="$DATA" "$PY" -m pytest -q --maxfail=50 --durations=15 -p no:cacheprovider "${TIMEOUT_FLAG[@]}"

# -- 4. the backends benchmark ---------------------------------------------------------------------
rm -f "$OUT/backends.md"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
run_step "4. backends benchmark" "$BENCH_S" bench.log \
  "$PY" benchmarks/backends.py $BENCH_ARGS --out "$OUT/backends.md"
rm -f "$OUT/backends.md.part"

# -- summary ---------------------------------------------------------------------------------------
{
  echo "# lrpnet GPU check ($MODE mode)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- GPU: $(grep -E '^cupy device:' "$OUT/env.txt" | sed 's/^cupy device: //')"
  if command -v nvidia-smi >/dev/null; then
    echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
  fi
  echo "- versions: $(grep -E '^(python|numpy|numba|cupy|torch) ' "$OUT/env.txt" | grep -v -E '^(cupy device|torch cuda):' \
                      | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  echo "- backend.gpu_status(): $(grep -E '^backend.gpu_status' "$OUT/env.txt" | sed 's/^[^:]*: //')"
  echo "- run: \`bash benchmarks/gpu_check.sh${1:+ $1}\` from $ROOT, PYTHONPATH=$ROOT, LRPNET_BACKEND=$BACKEND, data $DATA"
  echo "- total: $SECONDS s (deadline $TOTAL_S s)"
  echo
  echo "| step | status | counts | seconds | command |"
  echo "|---|---|---|---:|---|"
  printf '%s\n' "${STEPS[@]}"
  echo
  echo "Logs: tests.log, kernels.log, sweep.log (with the sweep's report.md), bench.log, env.txt; sweep outputs in $SWEEP_DIR."
  echo
  echo "## Benchmark (backends.md)"
  echo
  if [ -f "$OUT/backends.md" ]; then sed 's/^# /### /; s/^## /### /' "$OUT/backends.md"; else echo "(no table: see the step's status)"; fi
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
