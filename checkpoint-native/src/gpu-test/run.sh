#!/usr/bin/env bash
# Runs the CUDA checkpoint check on a GPU machine, from the repo root, with the bundle build.sh made:
#
#   bash checkpoint-native/src/gpu-test/run.sh [GpuCheck options, e.g. --skip criu]
#
# It first says what the machine has (GPU, driver, python and torch, the bundled Java runtime, libcuda's checkpoint
# API) and stops with exit 2 naming whatever is missing, or exit 0 and "SKIP: no GPU" where there is no GPU at all.
# Then GpuCheck runs (see README.md): exit 0 passed, 1 a step failed or a value was wrong, 3 the speed goal missed
# (GPU_TEST_STRICT_GOAL=1 only), 4 or 124 timed out. With $OUT set, the results go to $OUT/gpu-test.json and the log
# to $OUT/gpu-test.log.
# env: GPU_TEST_GIB (default 4), GPU_TEST_CRIU_GIB (default 1), GPU_TEST_PYTHON (default python3),
#      GPU_TEST_TIMEOUT_S (default 420, the whole check), GPU_TEST_STRICT_GOAL, GPU_TEST_CRIU_REQUIRED.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../../.." || exit 2
B=checkpoint-native/target/gpu-test
SRC=checkpoint-native/src/gpu-test
PY=${GPU_TEST_PYTHON:-python3}
TIMEOUT_S=${GPU_TEST_TIMEOUT_S:-420}
missing=()
PIDS=
CRIU_DIR=
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  # the holders GpuCheck started, should it have been killed before it could end them itself
  if [ -n "$PIDS" ]; then
    while read -r pid; do
      if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'torch_holder|JcudaHolder'; then
        echo "killing leftover holder $pid"
        kill -9 "$pid" 2>/dev/null
      fi
    done <"$PIDS"
    rm -f "$PIDS"
  fi
  if [ -n "$CRIU_DIR" ]; then
    rm -rf "$CRIU_DIR"
  fi
}
trap cleanup EXIT

echo "== thaw CUDA checkpoint check: what this machine has"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "SKIP: no GPU (nvidia-smi not found)"
  exit 0
fi
if ! gpus=$(timeout 60 nvidia-smi -L 2>&1); then
  if grep -qiE "no devices were found|couldn't communicate with the nvidia driver" <<<"$gpus"; then
    echo "SKIP: no GPU (nvidia-smi -L: $(head -n 1 <<<"$gpus"))"
    exit 0
  fi
  missing+=("a working nvidia-smi (nvidia-smi -L failed: $(head -n 1 <<<"$gpus"))")
elif ! grep -q '^GPU ' <<<"$gpus"; then
  echo "SKIP: no GPU (nvidia-smi -L lists none)"
  exit 0
fi
echo "gpu:     $(timeout 60 nvidia-smi -i 0 --query-gpu=name,driver_version,memory.total,memory.used \
  --format=csv,noheader 2>&1)"

if command -v "$PY" >/dev/null 2>&1; then
  echo "python:  $("$PY" --version 2>&1) at $(command -v "$PY")"
  if torch_info=$(timeout 180 "$PY" -c '
import torch
ok = torch.cuda.is_available()
print(torch.__version__, "CUDA", torch.version.cuda, "cuda.is_available()", ok,
      torch.cuda.get_device_name(0) if ok else "")
raise SystemExit(0 if ok else 1)' 2>&1); then
    echo "torch:   $torch_info"
  else
    echo "torch:   $(tail -n 1 <<<"$torch_info")"
    missing+=("PyTorch that sees the GPU in $PY")
  fi
else
  missing+=("$PY")
fi

JAVA=$B/runtime/bin/java
if [ -f "$JAVA" ] && [ ! -x "$JAVA" ]; then
  chmod u+x "$JAVA" "$B"/runtime/lib/jspawnhelper 2>/dev/null || true   # should the copy have lost its mode bits
fi
if [ -x "$JAVA" ] && "$JAVA" -version >/dev/null 2>&1; then
  echo "java:    $("$JAVA" -version 2>&1 | head -n 1) (bundled, $B/runtime)"
  [ -f "$B/BUILD-INFO.txt" ] && sed 's/^/         bundle /' "$B/BUILD-INFO.txt"
else
  missing+=("the bundle $B (build it with $SRC/build.sh and carry checkpoint-native/target/gpu-test)")
fi

# libcuda's checkpoint API, looked up as the JVM will: dlopen("libcuda.so.1"), then each symbol
if command -v "$PY" >/dev/null 2>&1 && cuda_info=$(timeout 60 "$PY" -c '
import ctypes
lib = ctypes.CDLL("libcuda.so.1")
path = next((l.split()[-1] for l in open("/proc/self/maps") if "libcuda.so" in l), "?")
api = ["cuCheckpointProcessLock", "cuCheckpointProcessCheckpoint", "cuCheckpointProcessRestore",
       "cuCheckpointProcessUnlock", "cuCheckpointProcessGetState"]
absent = [n for n in api if not hasattr(lib, n)]
old = "" if hasattr(lib, "cuCtxCreate_v2") else " NO_cuCtxCreate_v2"
print(path, ("lacks " + ",".join(absent)) if absent else "has cuCheckpointProcess*", old)
raise SystemExit(1 if absent else 0)' 2>&1); then
  echo "libcuda: $cuda_info"
  if grep -q NO_cuCtxCreate_v2 <<<"$cuda_info"; then
    echo "         no cuCtxCreate_v2 (which JCuda 12.6 calls): the JCuda holder uses the primary context instead"
    export GPU_TEST_JCUDA_PRIMARY_CTX=1
  fi
else
  why=$(tail -n 1 <<<"${cuda_info:-no python to look}")
  missing+=("libcuda.so.1 with cuCheckpointProcessLock ($why; driver 550+ has it)")
fi

# CRIU for the optional snapshot round: unpacked from the bundle, else the machine's own, else that round is skipped
if [ -f "$B/criu.tar.gz" ]; then
  CRIU_DIR=$(mktemp -d /tmp/thaw-gpu-test-criu.XXXXXX)
  if tar -xzf "$B/criu.tar.gz" -C "$CRIU_DIR" && "$CRIU_DIR/criu/criu.sh" --version >/dev/null 2>&1; then
    export THAW_CRIU=$CRIU_DIR/criu/criu.sh
    echo "criu:    $("$THAW_CRIU" --version | head -n 1) (bundled); unshare: $(command -v unshare || echo none)"
  else
    echo "criu:    the bundled CRIU does not run here; the snapshot round will say so"
  fi
elif command -v criu >/dev/null 2>&1; then
  echo "criu:    $(criu --version 2>&1 | head -n 1) (this machine's)"
else
  echo "criu:    none; the snapshot round is skipped"
fi
echo "kernel:  $(uname -r) ($(uname -v | cut -c1-60))"
echo "memory:  $(awk '/MemTotal|MemAvailable/{printf "%s %d GiB  ", $1, $2/1048576}' /proc/meminfo)"

if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do echo "MISSING: $m"; done
  echo "FAIL: this machine lacks what the check needs"
  exit 2
fi

# the GPU server's transformers must not look for anything online: there is nothing to reach
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
echo "== running GpuCheck (GPU_TEST_GIB=${GPU_TEST_GIB:-4})"
PIDS=$(mktemp /tmp/thaw-gpu-test-pids.XXXXXX)

args=(--bundle "$B" --python "$PY" --torch-holder "$SRC/torch_holder.py" --pids "$PIDS" --timeout-s "$TIMEOUT_S")
log=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  args+=(--out "$OUT/gpu-test.json")
  log=$OUT/gpu-test.log
fi
CP=$B/lib/thaw-gpu-test.jar:$B/lib/thaw-checkpoint-native.jar:$B/lib/jcuda-12.6.0.jar
# the shell's timeout is the last resort, after GpuCheck's own watchdog (which kills the holders first)
timeout -k 10 $((TIMEOUT_S + 30)) "$JAVA" --enable-native-access=ALL-UNNAMED -Xmx1g -cp "$CP" \
  dev.thaw.checkpoint.gputest.GpuCheck "${args[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "== GpuCheck exited with $rc"
exit "$rc"
