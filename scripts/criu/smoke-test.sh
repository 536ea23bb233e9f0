#!/usr/bin/env bash
# CRIU smoke test: a server holding a listening TCP socket and an established connection (whose client, this test,
# is not dumped) is dumped with --tcp-established, restored, and must then answer on the old connection and on a
# new one, with its counter intact. The server is dumped as Thaw dumps one: a JVM, first process of its own PID
# namespace (scripts/criu/CriuSmokeTest.java). Takes a few seconds; cleans up after itself.
# Needs root and a JDK 25 (scripts/lib.sh finds it). Usage: [CRIU=/path/to/criu] scripts/criu/smoke-test.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
criu=${CRIU:-$(command -v criu || echo /usr/local/sbin/criu)}
[ "$(id -u)" -eq 0 ] || { echo "smoke-test: FAILED: CRIU needs root" >&2; exit 1; }
[ -x "$criu" ] || { echo "smoke-test: FAILED: no CRIU at $criu" >&2; exit 1; }
jdk=$(thaw_find_jdk25) || { echo "smoke-test: FAILED: needs a JDK 25 (looked at \$JAVA_HOME and /usr/lib/jvm/*)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/thaw-criu-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$jdk/bin/javac" -d "$work/classes" "$here/CriuSmokeTest.java"
timeout -s KILL 180 "$jdk/bin/java" -XX:-UsePerfData -cp "$work/classes" CriuSmokeTest "$criu" "$work"
