#!/usr/bin/env bash
# A first look at checkpoint/restore of ort-server, before `thaw bench checkpoint` exists: boots ort-server on a
# model repository as PID 1 of its own PID namespace (page cache dropped), times exec -> first HTTP answer, dumps it
# with CRIU (killing it), then restores it with the page cache dropped and again warm, each time until the same
# answer comes back. Needs root, CRIU (scripts/install-criu.sh) and a built ort-server jar.
# Usage: scripts/criu/ort-server-preview.sh [REPOSITORY]   (default: the model `./thaw demo` generated)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/scripts/lib.sh"
thaw_require_jdk25
repo=${1:-$root/target/demo/model-1073741824-42/repository}
jar=$root/examples/ort-server/target/ort-server.jar
[ -f "$jar" ] || { echo "ort-server-preview: build first: ./mvnw -q -pl examples/ort-server -am package -DskipTests" >&2; exit 1; }
[ -d "$repo/mlp" ] || { echo "ort-server-preview: no model 'mlp' in $repo (run ./thaw demo, or thaw model generate)" >&2; exit 1; }
work=$(mktemp -d /tmp/thaw-criu-preview.XXXXXX)
port=18100
# CRIU cannot dump descriptors inherited from outside the namespace's mounts: keep only stdio
for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true; done
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
body=$(python3 -c "import json; print(json.dumps({'inputs':[{'name':'input','shape':[1,256],'datatype':'FP32','data':[((i*7)%13-6)/6.0 for i in range(256)]}]}))")
infer() { curl -sf -X POST "localhost:$port/v2/models/mlp/infer" -d "$body"; }
flags=(--tcp-established --ext-unix-sk --file-locks)
cleanup() { [ -f "$work/pid" ] && kill -9 "$(cat "$work/pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

sync; echo 3 >/proc/sys/vm/drop_caches
t0=$(date +%s%N)
unshare --pid --fork --mount-proc -- setsid sh -c "exec $JAVA_HOME/bin/java -XX:-UsePerfData -XX:+UseParallelGC -jar $jar \
  --model-repository $repo --http-port $port --grpc-port $((port + 1)) --allow-metrics=false </dev/null >>$work/server.log 2>&1" &
unshare_pid=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$port/v2/health/ready")" = 200 ]; do sleep 0.02; done
answer=$(infer)
echo "cold boot, exec to first answer: $(ms "$t0") ms"
server=$(awk '{print $1}' "/proc/$unshare_pid/task/$unshare_pid/children")
mkdir -m 700 "$work/images"
t1=$(date +%s%N)
criu dump -t "$server" -D "$work/images" -o dump.log "${flags[@]}"
echo "dump: $(ms "$t1") ms, images $(du -sb "$work/images" | cut -f1) bytes"
wait "$unshare_pid" 2>/dev/null || true
for cache in dropped warm; do
  [ "$cache" = dropped ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
  t2=$(date +%s%N)
  criu restore -D "$work/images" -o "restore-$cache.log" -d --root / --pidfile "$work/pid" "${flags[@]}"
  restored=$(ms "$t2")
  again=$(infer)
  echo "restore, page cache $cache: criu $restored ms, exec to first answer $(ms "$t2") ms, same answer: $([ "$answer" = "$again" ] && echo yes || echo NO)"
  kill -9 "$(cat "$work/pid")"
  while [ -e "/proc/$(cat "$work/pid")" ]; do sleep 0.01; done
  rm -f "$work/pid"
done
