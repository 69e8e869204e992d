#!/usr/bin/env bash
# bonesim device verification (issue 16): every GPU path once, on one H100/H200, in < 8 minutes.
#
#   OUT=/path/to/out bash scripts/gpu-check.sh          # on the device machine, from the repo root
#   GPU_CHECK_DRY=1 OUT=/tmp/x bash scripts/gpu-check.sh  # here: only the steps that need no GPU
#
# Each step runs under `timeout` (capped by what is left of GPU_CHECK_BUDGET seconds), logs to its
# own file, and is recorded in $OUT/summary.tsv as PASS / FAIL / SKIP / TIMEOUT; one failure does
# not stop the rest. Exit status: 0 when no step failed, 1 otherwise. docs/performance.md says
# what each step checks and the targets. Files under $OUT (at most 8, as the device tool returns):
#   summary.tsv  log.txt (every step's log, capped)  bench.json  parity.json  morphometry.json
#   sanitizer.txt  render.png  logs.tgz (the full per-step logs)
# No package registry on the device: wheels found in .whl/ or wheels/ are installed to /tmp/site
# first (see the device tool's README); the code runs from this source tree (PYTHONPATH=.).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY:-0}
BUDGET=${GPU_CHECK_BUDGET:-465}
DAYS_YEARS=0.1644  # 60 days
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bonesim-gpu-check.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
T0=$(date +%s)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
printf 'step\tstatus\tseconds\tnote\n' >"$OUT/summary.tsv"
FAILED=0

left() { echo $((BUDGET - ($(date +%s) - T0))); }
record() { # name status seconds note
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$OUT/summary.tsv"
    printf '%-22s %-8s %5ss  %s\n' "$1" "$2" "$3" "$4"
    [ "$2" = FAIL ] || [ "$2" = TIMEOUT ] && FAILED=1
    return 0
}
skip() { record "$1" SKIP 0 "$2"; }
# run NAME LIMIT EXPECT CMD...   EXPECT: pass (exit 0 wanted) or fail (nonzero wanted: a mutation)
run() {
    local name=$1 limit=$2 expect=$3
    shift 3
    local rem
    rem=$(left)
    if [ "$rem" -lt 10 ]; then
        record "$name" TIMEOUT 0 "no time left in the ${BUDGET}s budget"
        return 1
    fi
    [ "$limit" -gt "$rem" ] && limit=$rem
    local t=$(date +%s)
    { echo "### $name: $*"; echo "### limit ${limit}s, $(date -u +%FT%TZ)"; } >"$LOGS/$name.log"
    timeout -k 5 "$limit" "$@" >>"$LOGS/$name.log" 2>&1
    local rc=$? dt=$(($(date +%s) - t))
    echo "### exit $rc after ${dt}s" >>"$LOGS/$name.log"
    local last
    last=$(grep -v '^###' "$LOGS/$name.log" | grep -v '^\s*$' | tail -n 1 | cut -c1-150)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        record "$name" TIMEOUT "$dt" "killed at ${limit}s"
    elif [ "$expect" = fail ]; then
        if [ $rc -ne 0 ]; then record "$name" PASS "$dt" "failed as it must (exit $rc): $last"; else
            record "$name" FAIL "$dt" "the mutation was NOT caught (exit 0)"; fi
    elif [ $rc -eq 0 ]; then
        record "$name" PASS "$dt" "$last"
    else
        record "$name" FAIL "$dt" "exit $rc: $last"
    fi
    return $rc
}
has_py() { "$PY" -c "import $1" >/dev/null 2>&1; }
BONESIM=("$PY" -m bonesim)

# ------------------------------------------------------------------ 0. machine and environment
{
    echo "date: $(date -u +%FT%TZ)  host: $(hostname)  dry: $DRY"
    echo "git: $(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null || echo 'not a git checkout')"
    command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv
    command -v nvcc >/dev/null && nvcc --version | tail -n 2
    command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -n 2
    "$PY" --version
} >"$LOGS/env.log" 2>&1
record env PASS 0 "$(grep -m1 -E 'H100|H200|NVIDIA' "$LOGS/env.log" | cut -c1-100)"

WHEELS=$(ls .whl/*.whl wheels/*.whl 2>/dev/null | tr '\n' ' ')
if [ -n "$WHEELS" ]; then
    # shellcheck disable=SC2086
    run wheels 90 pass "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site $WHEELS && export PYTHONPATH="$PYTHONPATH:/tmp/site"
else
    skip wheels "no .whl/ or wheels/ folder carried"
fi
"$PY" - >"$LOGS/packages.log" 2>&1 <<'EOF'
import importlib
for m in ("numpy", "scipy", "h5py", "cupy", "dask", "distributed", "dask_cuda", "pyvista", "vtk", "edt",
          "cc3d", "numba", "tifffile", "skimage", "bonesim.mechanics"):
    try:
        mod = importlib.import_module(m)
        print(f"{m:18s} {getattr(mod, '__version__', 'ok')}")
    except Exception as e:
        print(f"{m:18s} MISSING ({type(e).__name__}: {str(e)[:80]})")
EOF
record packages PASS 0 "$(grep -c MISSING "$LOGS/packages.log") of 15 modules missing (logs: packages)"

# ------------------------------------------------------------------ 1. CPU references, in the background
# The NumPy runs take the CPU cores while the GPU steps run; parity steps wait for them.
SAMPLE=$WORK/sample.h5
PHANTOM=$WORK/phantom.h5
SIM=(--years "$DAYS_YEARS" --spinup-years 0.1 --save-every 10 --seed 3 --no-progress)
(
    run import-sample 60 pass "${BONESIM[@]}" import data/lhdl_3155_D_4_bc/slices "$SAMPLE" --voxel-size 19.5 \
        --sigma 1 --threshold 63 &&
        run cpu-sample 240 pass "${BONESIM[@]}" simulate "$SAMPLE" "$WORK/sample-cpu.h5" --backend numpy "${SIM[@]}"
) >"$WORK/bg1.txt" 2>&1 &
BG1=$!
(
    # 100 x 75 x 133: no multiple of the tile block (32x4x4) nor of the z-march block (32x8, 16 planes)
    run phantom 60 pass "${BONESIM[@]}" phantom "$PHANTOM" --shape 100,75,133 --bvtv 0.25 --seed 5 &&
        run cpu-phantom 240 pass "${BONESIM[@]}" simulate "$PHANTOM" "$WORK/phantom-cpu.h5" --backend numpy "${SIM[@]}"
) >"$WORK/bg2.txt" 2>&1 &
BG2=$!

# ------------------------------------------------------------------ 2. the GPU tests, required to run
GPU=1
if [ "$DRY" = 1 ]; then
    # here: the gate itself must turn the missing GPU into a failure
    run gpu-tests-gate 120 fail env BONESIM_REQUIRE_GPU=1 "$PY" -m pytest -q -rfEs -p no:cacheprovider -m gpu \
        tests/ca/test_ca_gpu.py
    GPU=0
else
    run gpu-tests 170 pass env BONESIM_REQUIRE_GPU=1 "$PY" -m pytest -q -rfEs -p no:cacheprovider -m gpu \
        -k "not dask_cuda" tests || true
    "$PY" -c "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0" >/dev/null 2>&1 || GPU=0
fi

# ------------------------------------------------------------------ 3. mutation: no barriers must fail
if [ $GPU = 1 ]; then
    run mutation-no-barriers 90 fail env BONESIM_KERNEL_MUTATION=no_barriers BONESIM_REQUIRE_GPU=1 \
        "$PY" -m pytest -q -x -p no:cacheprovider -m gpu tests/ca/test_ca_gpu.py -k "bit_for_bit and 37"
else
    # the same mutation on the CPU emulation of the block bodies (tests/ca/test_kernel_shell.py)
    run mutation-cpu 120 pass "$PY" -m pytest -q -p no:cacheprovider tests/ca/test_kernel_shell.py -k without_barriers
fi

# ------------------------------------------------------------------ 4. GPU runs through the CLI, then parity
wait $BG1
wait $BG2
cat "$WORK/bg1.txt" "$WORK/bg2.txt"
# the background steps wrote their own rows to summary.tsv; their FAILED flag stayed in the subshell
grep -qE '^[^ ]+ +(FAIL|TIMEOUT) ' "$WORK/bg1.txt" "$WORK/bg2.txt" && FAILED=1
if [ $GPU = 1 ]; then
    for s in sample phantom; do
        src=$SAMPLE
        [ $s = phantom ] && src=$PHANTOM
        if [ -f "$src" ]; then
            run "gpu-$s" 120 pass "${BONESIM[@]}" simulate "$src" "$WORK/$s-gpu.h5" --backend cupy "${SIM[@]}"
        else
            skip "gpu-$s" "no input (its CPU step failed)"
        fi
    done
fi
: >"$WORK/parity.json"
for s in sample phantom; do
    other=$WORK/$s-gpu.h5
    [ $GPU = 1 ] || other=$WORK/$s-cpu.h5  # dry run: the comparison plumbing on two equal files
    if [ -f "$WORK/$s-cpu.h5" ] && [ -f "$other" ]; then
        run "parity-$s" 60 pass "$PY" scripts/compare_results.py "$WORK/$s-cpu.h5" "$other"
        grep -v '^###' "$LOGS/parity-$s.log" >>"$WORK/parity.json"
    else
        skip "parity-$s" "a run is missing"
    fi
done
cp "$WORK/parity.json" "$OUT/parity.json"
# whole-run throughput through the CLI (I/O included), from the runs' own summary lines
for f in "$LOGS"/cpu-*.log "$LOGS"/gpu-*.log; do
    [ -f "$f" ] && echo "$(basename "$f" .log): $(grep -ho '[0-9.]* Gvox/s' "$f" | tail -n 1)"
done >"$LOGS/cli-throughput.log"
record cli-throughput PASS 0 "$(grep -v ': $' "$LOGS/cli-throughput.log" | tr '\n' ' ' | cut -c1-150)"

# ------------------------------------------------------------------ 5. benchmark JSON, 512³ and 1024³
# (bonesim/ca/bench.py KERNEL_VARIANTS: tile and zm with and without the uniform-tile skip and active tiles)
if [ $GPU = 1 ]; then
    run bench 180 pass sh -c "\"$PY\" scripts/bench.py --shape 512 --shape 1024 --steps 30 >\"$OUT/bench.json\""
else
    run bench-numpy 60 pass sh -c "\"$PY\" scripts/bench.py --backend numpy --shape 48 --steps 2 --numpy-shape 32 \
        --numpy-steps 2 --baseline-shape 0 >\"$OUT/bench.json\""
fi

# ------------------------------------------------------------------ 6. GPU morphometry against the CPU
if [ $GPU = 1 ]; then
    run morphometry 90 pass sh -c "\"$PY\" scripts/bench_morphometry.py --size 128 --gpu-size 512 >\"$OUT/morphometry.json\""
else
    skip morphometry "no GPU"
fi

# ------------------------------------------------------------------ 7. compute-sanitizer, 64³, each variant
if [ $GPU = 1 ] && command -v compute-sanitizer >/dev/null; then
    : >"$WORK/sanitizer.txt"
    for v in tile zm; do
        for tool in memcheck racecheck; do
            run "san-$tool-$v" 45 pass compute-sanitizer --tool "$tool" --error-exitcode 3 \
                "$PY" scripts/gpu_step.py --variant "$v" --shape 64 --steps 2 --no-compare
            tail -n 5 "$LOGS/san-$tool-$v.log" >>"$WORK/sanitizer.txt"
        done
    done
    run san-memcheck-odd 45 pass compute-sanitizer --tool memcheck --error-exitcode 3 \
        "$PY" scripts/gpu_step.py --variant zm --shape 61,67,69 --steps 2 --no-compare
    # positive control: racecheck must see the hazard of the kernel without barriers
    run san-racecheck-mutant 45 fail env BONESIM_KERNEL_MUTATION=no_barriers compute-sanitizer --tool racecheck \
        --error-exitcode 3 "$PY" scripts/gpu_step.py --variant tile --shape 64 --steps 1 --no-compare
    tail -n 5 "$LOGS/san-racecheck-mutant.log" >>"$WORK/sanitizer.txt"
    head -c 4000000 "$WORK/sanitizer.txt" >"$OUT/sanitizer.txt"
else
    skip sanitizer "$([ $GPU = 1 ] && echo 'compute-sanitizer not on PATH' || echo 'no GPU')"
fi

# ------------------------------------------------------------------ 8. dask-cuda two-run study
if [ $GPU = 1 ] && has_py dask_cuda; then
    run dask-cuda 90 pass env BONESIM_REQUIRE_GPU=1 "$PY" -m pytest -q -rfEs -p no:cacheprovider -m gpu \
        tests/batch/test_batch_engine_study.py -k dask_cuda
else
    skip dask-cuda "$([ $GPU = 1 ] && echo 'dask_cuda does not import (carry its wheels)' || echo 'no GPU')"
fi

# ------------------------------------------------------------------ 9. micro-FE solve (mechanics issue)
if has_py bonesim.mechanics; then
    if [ -d tests/mechanics ]; then
        run mechanics 90 pass env BONESIM_REQUIRE_GPU=$GPU "$PY" -m pytest -q -rfEs -p no:cacheprovider tests/mechanics
    else
        skip mechanics "bonesim.mechanics imports but has no tests/mechanics"
    fi
else
    skip mechanics "bonesim.mechanics has not landed"
fi

# ------------------------------------------------------------------ 10. a frame rendered through EGL
if [ $GPU = 1 ] && has_py pyvista && [ -f "$WORK/sample-gpu.h5" ]; then
    run render-egl 90 pass env VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow PYVISTA_OFF_SCREEN=true \
        "${BONESIM[@]}" render "$WORK/sample-gpu.h5" -o "$OUT/render.png" --size 800x600
else
    skip render-egl "$(has_py pyvista && echo 'no GPU result' || echo 'pyvista/vtk do not import (vtk wheel > carry limit?)')"
fi

# ------------------------------------------------------------------ collect
for f in "$LOGS"/*.log; do
    echo "=================== $(basename "$f" .log)"
    head -c 300000 "$f"
done >"$WORK/log.txt"
head -c 15000000 "$WORK/log.txt" >"$OUT/log.txt"
tar -C "$WORK" -czf "$OUT/logs.tgz" logs
echo
echo "== summary ($(($(date +%s) - T0)) s of ${BUDGET} s; full logs in \$OUT/log.txt)"
column -t -s $'\t' "$OUT/summary.tsv" 2>/dev/null | cut -c1-200 || cat "$OUT/summary.tsv"
rm -rf "$WORK"
exit $FAILED
