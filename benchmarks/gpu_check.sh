#!/usr/bin/env bash
# GPU check of napari-sasvi (issue 12 item 5): under 9 minutes on one CUDA GPU, one table at the end.
#
#     bash benchmarks/gpu_check.sh            # from anywhere; it runs from the repo root
#
# Needs: the project's environment already installed (the repo's .venv, else $PYTHON, else the
# `python` on PATH) with torch built for CUDA. It installs nothing and downloads nothing (random
# weights throughout), so it runs on a machine without internet.
#
# It runs, each section under its own `timeout` (90 + 210 + 150 + 60 s at most, so under 9 minutes):
#   1. the CUDA tests: `pytest -m cuda` if pyproject.toml declares a `cuda` marker, else the tests
#      whose names contain "cuda" or "device" (`-k "cuda or device"`); pass/fail counts in the table;
#   2. SAM2.1 tiny and large at image size 1024, random weights, bf16 autocast: frames/s of a SASVi
#      default-mode run (replay overseer, 40 synthetic frames of 854 x 480, after a 4-frame warm-up)
#      and of SAM2 propagation alone; peak GPU memory;
#   3. the three overseers (CholecSeg8k architectures, random weights, fp32 as the engine runs them):
#      Mask R-CNN, DETR (5 and 100 queries kept) and Mask2Former at batch 1 and 8: frames/s, peak GPU
#      memory (torch.cuda.max_memory_allocated, reset per row; the weights count).
#   4. a click's latency (issue 30, benchmarks/bench_prompt_latency.py): SAM2.1 tiny at 1024, the
#      image features of a frame once, then clicks on the cached features (goal < 150 ms a click);
#      its own table, printed before the summary.
# Then one markdown table with the GPU name, the torch version and the command.
#
# Exit status: 0 everything ran and passed; 1 a test failed or a row / section failed or timed out
# (the table says which); 3 no CUDA GPU (no nvidia-smi, or torch.cuda.is_available() is False):
# a message, nothing run. Rows measured before a timeout are kept (each row is written when done).
set -u
cd "$(dirname "$0")/.." || exit 1
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python
fi
COMMAND="bash benchmarks/gpu_check.sh $*"
START=$SECONDS
SAM2_TIMEOUT=210
OVERSEERS_TIMEOUT=150
CLICK_TIMEOUT=60
DEVICE_ARGS=()
if [ -n "${SASVI_GPU_CHECK_CPU:-}" ]; then
    # hidden: exercise the code paths on the CPU with tiny sizes (no GPU needed)
    DEVICE_ARGS=(--device cpu --quick)
else
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check: nvidia-smi not found: this machine has no NVIDIA driver; nothing to check (exit 3)."
        exit 3
    fi
    if ! nvidia-smi -L >/dev/null 2>&1; then
        echo "gpu_check: nvidia-smi sees no GPU:"
        nvidia-smi -L 2>&1 | head -3
        exit 3
    fi
    "$PY" benchmarks/gpu_check.py cuda || exit 3
fi
WORK=$(mktemp -d /tmp/sasvi_gpu_check.XXXXXX)
ROWS=$WORK/rows.jsonl
: >"$ROWS"
echo "gpu_check: $($PY --version 2>&1) at $PY; rows and logs in $WORK"

# 1. the CUDA tests
if grep -Eq '^[[:space:]]*"cuda[:"]' pyproject.toml; then
    SELECTION='-m cuda'
    SEL_ARGS=(-m cuda)
else
    SELECTION='-k "cuda or device" (no cuda marker in pyproject.toml)'
    SEL_ARGS=(-k "cuda or device")
fi
echo "gpu_check: [1/3] tests $SELECTION"
T=$SECONDS
timeout 90 "$PY" -m pytest -q -p no:cacheprovider "${SEL_ARGS[@]}" >"$WORK/tests.log" 2>&1
TESTS_RC=$?
TESTS_SECONDS=$((SECONDS - T))
tail -3 "$WORK/tests.log"

# 2. SAM2.1 tiny / large at 1024, bf16
echo "gpu_check: [2/3] SAM2.1 tiny and large"
timeout "$SAM2_TIMEOUT" "$PY" benchmarks/gpu_check.py sam2 --rows "$ROWS" ${DEVICE_ARGS[@]+"${DEVICE_ARGS[@]}"} >"$WORK/sam2.log" 2>&1
SAM2_RC=$?
grep '^{' "$WORK/sam2.log" || tail -5 "$WORK/sam2.log"

# 3. the overseers at batch 1 / 8
echo "gpu_check: [3/3] overseers"
timeout "$OVERSEERS_TIMEOUT" "$PY" benchmarks/gpu_check.py overseers --rows "$ROWS" ${DEVICE_ARGS[@]+"${DEVICE_ARGS[@]}"} >"$WORK/overseers.log" 2>&1
OVERSEERS_RC=$?
grep '^{' "$WORK/overseers.log" || tail -5 "$WORK/overseers.log"

# 4. a click's latency (issue 30): SAM2.1 tiny at 1024, image features once, then clicks on them
echo "gpu_check: [4/4] click latency"
if [ -n "${SASVI_GPU_CHECK_CPU:-}" ]; then
    CLICK_ARGS=(--device cpu --image-size 256 --n-frames 1 --clicks 2 --repeats 1)
else
    CLICK_ARGS=(--device cuda)
fi
timeout "$CLICK_TIMEOUT" "$PY" benchmarks/bench_prompt_latency.py "${CLICK_ARGS[@]}" >"$WORK/clicks.log" 2>&1
CLICK_RC=$?
grep '^|' "$WORK/clicks.log" || tail -5 "$WORK/clicks.log"

"$PY" benchmarks/gpu_check.py table --rows "$ROWS" --command "$COMMAND" \
    --tests-log "$WORK/tests.log" --tests-rc "$TESTS_RC" --tests-selection "$SELECTION" \
    --tests-seconds "$TESTS_SECONDS" --sam2-rc "$SAM2_RC" --overseers-rc "$OVERSEERS_RC" \
    --timeouts "$SAM2_TIMEOUT" "$OVERSEERS_TIMEOUT" --work "$WORK" --total-seconds "$((SECONDS - START))"
RC=$?
if [ "$CLICK_RC" -ne 0 ]; then
    echo "gpu_check: the click latency section failed (exit $CLICK_RC; log: $WORK/clicks.log)"
    [ "$RC" -eq 0 ] && RC=1
fi
exit "$RC"
