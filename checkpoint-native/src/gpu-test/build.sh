#!/usr/bin/env bash
# Builds the GPU check's bundle, checkpoint-native/target/gpu-test/, on a machine without a GPU, for a GPU machine
# that has no Maven and maybe no JDK: a jlink'd Java runtime, the checkpoint-native classes, JCuda 12.6.0 and its
# driver library, the check's own classes, and (when it fits) CRIU with its libraries. See README.md beside this.
#
# usage: bash checkpoint-native/src/gpu-test/build.sh      (from anywhere; it works in the repo root)
# env:   JAVA_HOME (default /usr/lib/jvm/temurin-25-jdk-amd64), GPU_TEST_NO_CRIU=1 to leave CRIU out,
#        GPU_TEST_MAX_MIB (default 60): fail when the bundle is larger.
#
# Every Maven, javac and jlink run holds /tmp/thaw-build.lock: the build machine has 2 cores and other builds share it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
JDK_BIN=$JAVA_HOME/bin
SRC=checkpoint-native/src/gpu-test
B=checkpoint-native/target/gpu-test      # the bundle that travels
WORK=checkpoint-native/target/gpu-test-build   # what only the build needs
LOCK=/tmp/thaw-build.lock
JCUDA_VERSION=12.6.0
JCUDA_LIB=libJCudaDriver-$JCUDA_VERSION-linux-x86_64.so
MAX_MIB=${GPU_TEST_MAX_MIB:-60}

say() { printf '== %s\n' "$*"; }
locked() { flock "$LOCK" "$@"; }

[ -x "$JDK_BIN/jlink" ] || { echo "no JDK with jlink at $JAVA_HOME" >&2; exit 2; }
rm -rf "$B" "$WORK"
mkdir -p "$B/lib" "$B/native" "$WORK/classes" "$WORK/m2"

# 1. checkpoint-native through Maven. When the module does not build right now (others edit it while this runs),
# compile only the classes the check uses from the same sources, and say so.
say "building checkpoint-native with Maven"
CHECKPOINT_JAR=$B/lib/thaw-checkpoint-native.jar
if locked ./mvnw -q -B -o -pl checkpoint-native -am package -DskipTests >"$WORK/maven.log" 2>&1; then
  for jar in checkpoint-native/target/thaw-checkpoint-native-*.jar; do
    case $jar in *-sources.jar|*-javadoc.jar|*-tests.jar) ;; *) break ;; esac
  done
  cp "$jar" "$CHECKPOINT_JAR"
  CHECKPOINT_FROM="Maven ($(basename "$jar"))"
else
  echo "WARNING: the Maven build of checkpoint-native failed (tail of $WORK/maven.log below);"
  echo "         compiling just the classes the check uses from checkpoint-native/src/main/java instead"
  tail -n 15 "$WORK/maven.log" | sed 's/^/    /'
  P=checkpoint-native/src/main/java/dev/thaw/checkpoint
  mkdir -p "$WORK/checkpoint-classes"
  locked "$JDK_BIN/javac" --release 25 -nowarn -d "$WORK/checkpoint-classes" \
    "$P/CudaCheckpoint.java" "$P/DriverCudaCheckpoint.java" "$P/CommandCudaCheckpoint.java" \
    "$P/GpuCheckpointer.java" "$P/Criu.java" "$P/CriuException.java" "$P/PidNamespaceProcess.java"
  "$JDK_BIN/jar" --create --file "$CHECKPOINT_JAR" -C "$WORK/checkpoint-classes" .
  CHECKPOINT_FROM="javac of the checkpoint classes alone (the Maven build failed)"
fi

# 2. JCuda: the Java jar, and from the natives jar only the driver API's library (the others are 23 MiB we never load)
say "fetching JCuda $JCUDA_VERSION"
fetch() { # groupId:artifactId:version[:packaging[:classifier]]; offline first, then from the registry
  locked ./mvnw -q -B -N -o dependency:copy -Dartifact="$1" -DoutputDirectory="$WORK/m2" >>"$WORK/maven.log" 2>&1 \
    || locked ./mvnw -q -B -N dependency:copy -Dartifact="$1" -DoutputDirectory="$WORK/m2" >>"$WORK/maven.log" 2>&1 \
    || { echo "cannot fetch $1 (see $WORK/maven.log)" >&2; exit 1; }
}
fetch "org.jcuda:jcuda:$JCUDA_VERSION"
fetch "org.jcuda:jcuda-natives:$JCUDA_VERSION:jar:linux-x86_64"
cp "$WORK/m2/jcuda-$JCUDA_VERSION.jar" "$B/lib/"
(cd "$WORK" && "$JDK_BIN/jar" --extract --file "m2/jcuda-natives-$JCUDA_VERSION-linux-x86_64.jar" "lib/$JCUDA_LIB")
cp "$WORK/lib/$JCUDA_LIB" "$B/native/"

# 3. the check's own classes
say "compiling the check"
CP=$CHECKPOINT_JAR:$B/lib/jcuda-$JCUDA_VERSION.jar
mapfile -t SOURCES < <(find "$SRC/java" -name '*.java' | sort)
locked "$JDK_BIN/javac" --release 25 -Xlint:all -Xlint:-processing -d "$WORK/classes" -cp "$CP" "${SOURCES[@]}"
"$JDK_BIN/jar" --create --file "$B/lib/thaw-gpu-test.jar" -C "$WORK/classes" .

# 4. a runtime with the modules these jars use (java.base and the FFM API, java.logging for JCuda, ...)
say "linking the Java runtime"
MODULES=java.base,java.logging,jdk.unsupported
if deps=$(locked "$JDK_BIN/jdeps" --print-module-deps --ignore-missing-deps --multi-release 25 \
    "$B/lib/thaw-gpu-test.jar" "$CHECKPOINT_JAR" "$B/lib/jcuda-$JCUDA_VERSION.jar" 2>>"$WORK/jdeps.log"); then
  MODULES=$(printf '%s,%s' "$MODULES" "$deps" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
else
  echo "WARNING: jdeps failed (see $WORK/jdeps.log); linking $MODULES,java.net.http"
  MODULES=$MODULES,java.net.http
fi
echo "modules: $MODULES"
locked "$JDK_BIN/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages \
  --compress=zip-6 --output "$B/runtime"
# links travel as links, and would point nowhere there: make them plain files
find "$B/runtime" -type l | while read -r link; do cp --remove-destination "$(readlink -f "$link")" "$link"; done
# Temurin's libjvm keeps its symbol table (29 MiB); stripped it is 5 MiB smaller and runs the same
if command -v strip >/dev/null; then
  find "$B/runtime" -name '*.so' -exec strip --strip-unneeded {} +
fi

# 5. CRIU for the optional full-snapshot round, with the libraries it links beyond glibc, stripped and packed
# (run.sh unpacks it): 15 MiB as installed, about 4 MiB so
CRIU_NOTE="left out"
if [ "${GPU_TEST_NO_CRIU:-0}" != 1 ] && [ -x /usr/local/sbin/criu ]; then
  say "adding CRIU"
  C=$WORK/criu-stage/criu
  mkdir -p "$C/lib"
  cp /usr/local/sbin/criu "$C/criu"
  ldd /usr/local/sbin/criu | awk '/=> \//{print $3}' | while read -r lib; do
    case $(basename "$lib") in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;; # glibc: the machine's own
      *) cp -L "$lib" "$C/lib/" ;;
    esac
  done
  if command -v strip >/dev/null; then
    strip "$C/criu" "$C"/lib/*.so* 2>/dev/null || true
  fi
  cat >"$C/criu.sh" <<'EOF'
#!/bin/sh
# CRIU as built on the build machine, with the libraries it was linked against (glibc aside)
d=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/criu" "$@"
EOF
  chmod +x "$C/criu.sh" "$C/criu"
  version=$("$C/criu.sh" --version | head -n 1)
  tar -czf "$B/criu.tar.gz" -C "$WORK/criu-stage" criu
  CRIU_NOTE="$version from /usr/local/sbin/criu, packed in criu.tar.gz ($(du -sh "$B/criu.tar.gz" | cut -f1))"
  echo "$CRIU_NOTE"
fi

# 6. what was built, and a check of the bundle that needs no GPU
{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "checkpoint-native: $CHECKPOINT_FROM"
  echo "jcuda: $JCUDA_VERSION (driver library only)"
  echo "runtime: $("$B/runtime/bin/java" -version 2>&1 | head -n 1); modules $MODULES"
  echo "criu: $CRIU_NOTE"
} >"$B/BUILD-INFO.txt"
cat "$B/BUILD-INFO.txt"

say "selftest with the bundled runtime"
RUN_CP=$B/lib/thaw-gpu-test.jar:$CHECKPOINT_JAR:$B/lib/jcuda-$JCUDA_VERSION.jar
"$B/runtime/bin/java" --enable-native-access=ALL-UNNAMED -cp "$RUN_CP" dev.thaw.checkpoint.gputest.GpuCheck \
  --selftest --bundle "$B" --torch-holder "$SRC/torch_holder.py"

mib=$(( ($(du -sb "$B" | cut -f1) + 1048575) / 1048576 ))
du -sh "$B"/* | sed 's/^/    /'
echo "bundle: $B is $mib MiB (limit $MAX_MIB MiB); carry it: checkpoint-native/target/gpu-test"
if [ "$mib" -gt "$MAX_MIB" ]; then
  echo "the bundle is over $MAX_MIB MiB: build again with GPU_TEST_NO_CRIU=1" >&2
  exit 1
fi
