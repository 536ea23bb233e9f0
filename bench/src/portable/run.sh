#!/usr/bin/env bash
# Runs the bundle build.sh made (StoreBench, `thaw bench store` without the CLI) on a machine with no JDK, Maven or
# network: unpacks it, puts its nginx and curl on the PATH where the machine has none, and passes the arguments on.
#
# usage: bash bench/src/portable/run.sh [--size 2g] [--json] ...   (needs root: the bench drops the page cache)
# env:   STORE_BENCH_DIR (default /tmp/store-bench): where the bundle is unpacked and the bench works
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
DIR=${STORE_BENCH_DIR:-/tmp/store-bench}
mkdir -p "$DIR"
if [ ! -x "$DIR/store-bench/runtime/bin/java" ]; then
  tar -C "$DIR" -xJf "$ROOT/bench/target/store-bench.tar.xz"
fi
B=$DIR/store-bench
for tool in nginx curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    export PATH=$PATH:$B/tools/$tool
    echo "store-bench: using the bundled $tool" >&2
  fi
done
echo "store-bench: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(head -n 1 "$B/BUILD-INFO.txt")" >&2
exec "$B/runtime/bin/java" --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC -cp "$B/lib/*" \
  dev.thaw.bench.StoreBench --work-dir "$DIR/work" "$@"
