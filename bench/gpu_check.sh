#!/usr/bin/env bash
# The ten-minute GPU check: everything this project can learn from ten minutes on a machine
# with an NVIDIA GPU, in one command, for a person (or session) who has one.
#
#   bash bench/gpu_check.sh OUTDIR
#
# Expects Python 3 with CuPy, NumPy, Numba, pytest, hypothesis and PyTorch installed, no
# network, fastnn not installed (it runs from this checkout) and MNIST in $FASTNN_DATA_DIR.
# It writes at most eight files to OUTDIR and prints its progress:
#   check.log      the GPU, driver, CUDA, CuPy configuration; each phase's start and verdict
#   tests.xml      JUnit report of every cupy-parametrized test (per-test timeout 90 s)
#   tests.log      their output
#   sanitizer.log  compute-sanitizer memcheck over the kernel property tests, where it exists
#   train.log      `fastnn train --backend cupy`: the keras recipe's test accuracy
#   bench.json     `fastnn bench`: numpy vs cupy (CUDA graphs on and off) vs PyTorch CUDA,
#   bench.log      and the 8192 x 4096 step against the cuBLAS SGEMM throughput it measures
#   results.md     each target, as measured, met or not, with its command
# Each phase has a time limit; the whole check stays under 8 minutes. On a machine where
# the cupy backend cannot run, it says why and stops after the first phase (exit 2).
set -uo pipefail

out=${1:?usage: bash bench/gpu_check.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$root" || exit 1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export FASTNN_HYPOTHESIS_PROFILE=ci
python=${PYTHON:-python3}
log=$out/check.log
: > "$log"
started=$SECONDS

say() { printf '[%3ds] %s\n' $((SECONDS - started)) "$*" | tee -a "$log"; }

# run LIMIT FILE COMMAND...: the command, its output to FILE, stopped after LIMIT seconds
# (SIGINT first, so pytest still writes its report); its exit status is returned.
run() {
    local limit=$1 file=$2
    shift 2
    timeout -s INT -k 15 "$limit" "$@" > "$file" 2>&1
}

say "fastnn GPU check from $root into $out"
say "1/6 the machine"
"$python" -m bench.gpu_check environment >> "$log" 2>&1
status=$?
if [ "$status" -ne 0 ]; then
    say "stopped: $(tail -n 1 "$log")"
    exit 2
fi
grep -E '"(gpu|driver|cuda_runtime|cupy|torch)"' "$log" | sed 's/^ */    /'

say "2/6 the cupy tests (limit 200 s)"
FASTNN_TEST_TIMEOUT=90 run 200 "$out/tests.log" "$python" -m pytest tests \
    -k "cupy and not emulated" -q -p no:cacheprovider --junitxml "$out/tests.xml"
say "    $(tail -n 1 "$out/tests.log")"

say "3/6 compute-sanitizer memcheck over the kernel property tests (limit 80 s)"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
if [ -n "$sanitizer" ]; then
    run 80 "$out/sanitizer.log" "$sanitizer" --tool memcheck --error-exitcode 3 \
        "$python" -m pytest tests/test_op_properties.py tests/test_gpu_path.py \
        -k "cupy and not emulated" -q -p no:cacheprovider
    say "    exit status $?: $(grep -E 'ERROR SUMMARY' "$out/sanitizer.log" | tail -n 1)"
else
    echo "compute-sanitizer not found (it comes with the CUDA toolkit, not with CuPy's wheels)" \
        > "$out/sanitizer.log"
    say "    $(cat "$out/sanitizer.log")"
fi

say "4/6 fastnn train --backend cupy (limit 60 s)"
run 60 "$out/train.log" "$python" -m fastnn train --backend cupy --seed 0
say "    $(grep 'test accuracy' "$out/train.log" || tail -n 1 "$out/train.log")"

say "5/6 fastnn bench: numpy, cupy with and without CUDA graphs, PyTorch CUDA (limit 150 s)"
run 150 "$out/bench.log" "$python" -m fastnn bench --backend numpy --backend cupy \
    --sections training,scaling --graphs both --points 8192x4096 --rounds 3 \
    --json "$out/bench.json"
say "    exit status $?"

say "6/6 the results page"
"$python" -m bench.gpu_check report "$out" >> "$log" 2>&1
cat "$out/results.md" 2>/dev/null
say "done in $((SECONDS - started)) s; files in $out"
