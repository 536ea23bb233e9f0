#!/usr/bin/env bash
# Start-up cost of the shipped thaw command: the size of its class path (sidecar/target/lib), the wall and CPU time of
# `thaw --version`, and of `thaw mount` from exec to ready (its --json line) for a small model at a file origin.
# Each figure is the median of RUNS runs (default 7) after one warm-up; the ./thaw launcher builds first when needed.
#   bench/scripts/startup-times.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-7}
work=$(mktemp -d)
trap 'fusermount3 -u "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
"$root/thaw" --version >/dev/null # builds, and makes the start-up cache, before anything is timed

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

lib_bytes=$(du -sb "$root/sidecar/target/lib" | cut -f1)
lib_jars=$(find "$root/sidecar/target/lib" -name '*.jar' | wc -l)

version_wall=() version_cpu=()
for _ in $(seq 0 "$runs"); do
  t0=$(now)
  cpu=$( { /usr/bin/time -f '%U %S' "$root/thaw" --version >/dev/null; } 2>&1 | tail -1 | awk '{print $1+$2}')
  t1=$(now)
  version_wall+=("$(echo "$t1 - $t0" | bc)") version_cpu+=("$cpu")
done

mkdir -p "$work/model" "$work/mnt"
head -c 16M /dev/urandom >"$work/model/weights.bin"
echo '{"name":"startup"}' >"$work/model/config.json"
"$root/thaw" push --name startup:v1 "$work/model" "file://$work/origin" >/dev/null 2>&1
mount_wall=()
for _ in $(seq 0 "$runs"); do
  t0=$(now)
  exec 3< <("$root/thaw" mount --json --cache "$work/cache" --origin "file://$work/origin" startup:v1 "$work/mnt" 2>/dev/null)
  read -r _ <&3 # the ready line
  t1=$(now)
  mount_wall+=("$(echo "$t1 - $t0" | bc)")
  "$root/thaw" unmount "$work/mnt" >/dev/null 2>&1
  exec 3<&-
  while mountpoint -q "$work/mnt"; do sleep 0.05; done
done

printf 'lib: %s bytes (%s MiB), %s jars\n' "$lib_bytes" "$((lib_bytes / 1048576))" "$lib_jars"
# the first run of each list is the warm-up
printf 'thaw --version: wall %s s, cpu %s s (median of %s)\n' \
  "$(printf '%s\n' "${version_wall[@]:1}" | median)" "$(printf '%s\n' "${version_cpu[@]:1}" | median)" "$runs"
printf 'thaw mount (exec to ready): wall %s s (median of %s)\n' "$(printf '%s\n' "${mount_wall[@]:1}" | median)" "$runs"
