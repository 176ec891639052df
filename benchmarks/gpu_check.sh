#!/usr/bin/env bash
# The GPU check of issue 4 as one prepared command, for a session that is lent a GPU machine:
#
#     run(command="bash benchmarks/gpu_check.sh", timeout_s=540)      # the device tool; files come back from $OUT
#     BACKENDS=numpy,torch:cpu bash benchmarks/gpu_check.sh            # the same steps on a CPU, to try the script
#
# Steps, each bounded in time and logged to $OUT/gpu_check.log (a failing step is reported and the next one runs):
#   1. what the machine is: GPU, driver, Python, numpy/torch/cupy versions;
#   2. install hebbcore without its dependencies (that machine has torch, cupy, pluggy, pytest and hypothesis, and
#      no network), so the built-in plugins' entry points are registered;
#   3. the test suite, where the CUDA and CuPy tests that skip on a CPU run (CIFAR-10 is not there: its tests skip);
#   4. `hebbcore bench` on $BACKENDS (default torch:cuda and cupy, a full 50,000-image epoch each on CUDA), table
#      in the log, JSON in $OUT/bench_gpu.json: the figures docs/benchmarks.md's GPU section needs;
#   4b. on torch-CUDA: SoftHebb's network, hebbcore's step against the plain PyTorch one, and the dense-coefficient
#      rules' networks against their floors (`--softhebb`, `--dense`), JSON in $OUT/bench_gpu_dense.json;
#   5. benchmarks/winner_sums.py on $BACKENDS: per layer, the dense one-hot correlation against the winner sums
#      (and, on CuPy, the scatter-add candidate), then 32 Hebbian steps with each against the floor;
#   6. benchmarks/step_profile.py on torch-CUDA: kernels launched and device time per Hebbian step against its floor,
#      and the operators taking the most device time; then on CuPy, the time of each Ops method per step.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
BACKENDS="${BACKENDS:-torch:cuda,cupy}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
LOG="$OUT/gpu_check.log"
: > "$LOG"

step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, log its output, report its status
    local name="$1" limit="$2"
    shift 2
    echo "=== $name ($(date -u +%H:%M:%SZ), limit ${limit}s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "=== $name: exit status $rc" | tee -a "$LOG"
}

step machine 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi";
    python3 -c "import sys, numpy; print(sys.version.split()[0], \"numpy\", numpy.__version__)";
    python3 -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available())" || true;
    python3 -c "import cupy; print(\"cupy\", cupy.__version__, cupy.cuda.runtime.getDeviceCount(), \"device(s)\")" || true'
if ! python3 -c "import hebbcore" 2>/dev/null; then
    step install 120 python3 -m pip install -q --no-deps --no-build-isolation -e .
fi
step tests 150 python3 -m pytest -q -p no:cacheprovider -rs
step bench 240 hebbcore bench --backend "$BACKENDS" --repeats 2 --markdown --json "$OUT/bench_gpu.json"
step softhebb_dense 60 hebbcore bench --backend torch:cuda --images 2048 --repeats 2 --skip floor,sgd,memory \
    --softhebb 1000 --dense 1000 --json "$OUT/bench_gpu_dense.json"
step winner_sums 90 python3 benchmarks/winner_sums.py --backend "$BACKENDS" --repeats 20 --steps 32
step profile_torch 60 python3 benchmarks/step_profile.py --backend torch:cuda --steps 20
step profile_cupy 60 python3 benchmarks/step_profile.py --backend cupy --by-method --steps 20
echo "=== done ($(date -u +%H:%M:%SZ)); files in $OUT" | tee -a "$LOG"
