#!/usr/bin/env bash
# Builds a self-contained `thaw bench store` (StoreBench) for a machine that has no JDK, no Maven and no network, such
# as the 16-core GPU machine: a jlink'd Java runtime, the bench's and the store's jars with what they use (S3Proxy's
# filesystem backend included, its cloud SDKs left out), and Debian's nginx and curl with the libraries they link
# (glibc aside). The origin (nginx, S3Proxy) and the throttle run on that machine with the client, as they do here.
#
# usage: bash bench/src/portable/build.sh        (after ./mvnw -q -B -DskipTests install)
# out:   bench/target/store-bench/ (xz-packed as store-bench.tar.xz beside it; run it there with run.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
OUTDIR=bench/target/store-bench
WORK=bench/target/store-bench-build
LOCK=/tmp/thaw-build.lock
locked() { flock "$LOCK" "$@"; }
rm -rf "$OUTDIR" "$WORK" bench/target/store-bench.tar.xz
mkdir -p "$OUTDIR/lib" "$OUTDIR/tools" "$WORK/debs"

# 1. the jars: the bench's runtime class path, less what StoreBench never loads (the product's command line and sidecar,
# the inference servers, FUSE, gRPC, JMH, and S3Proxy's cloud backends: it runs S3Proxy on the local filesystem only)
locked ./mvnw -q -B -o dependency:build-classpath -Dmdep.outputFile="$ROOT/$WORK/cp.txt" -Dmdep.includeScope=runtime \
  -pl bench >"$WORK/maven.log" 2>&1 || { tail -20 "$WORK/maven.log"; exit 1; }
tr ':' '\n' <"$WORK/cp.txt" | grep -v -E 'thaw-sidecar|thaw-placement|/io/micronaut/|/io/etcd/|/io/micrometer/|picocli|ortools|onnxruntime|/io/grpc/|byte-buddy|thaw-checkpoint-native|thaw-fuse-mount|thaw-ort-server|thaw-triton-protocol|jmh|junit|assertj|opentest4j|apiguardian|commons-math3|proto-google|protobuf|/io/netty/|perfmark|jnr-|/jffi/|/ow2/asm|/jna/|/com/azure/|/com/microsoft/azure/|reactor|opentelemetry|msal4j|nimbus|content-type|lang-tag|oauth2|json-smart|accessors-smart|bcprov' \
  | while read -r jar; do cp "$jar" "$OUTDIR/lib/"; done
cp bench/target/thaw-bench.jar "$OUTDIR/lib/"
for jar in store/target/thaw-store-*.jar; do
  case $jar in *-tests.jar|*-sources.jar) ;; *) cp "$jar" "$OUTDIR/lib/" ;; esac
done

# 2. a runtime with every module the bench and its libraries use (jdeps on the bench and store, plus what
# jclouds, Jetty and the AWS SDK load by reflection)
MODULES=java.base,java.compiler,java.desktop,java.management,java.naming,java.net.http,java.security.jgss,java.sql,jdk.httpserver,jdk.unsupported,java.xml,java.logging,jdk.crypto.ec,java.scripting,jdk.management,java.instrument
locked "$JAVA_HOME/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages --compress=zip-0 \
  --output "$OUTDIR/runtime"
find "$OUTDIR/runtime" -type l | while read -r link; do cp --remove-destination "$(readlink -f "$link")" "$link"; done
find "$OUTDIR/runtime" -name '*.so' -exec strip --strip-unneeded {} +

# 3. nginx and curl from Debian's packages, each with the libraries it links beyond glibc, behind a wrapper that
# points the loader at them
(cd "$WORK/debs" && apt-get download nginx >/dev/null)
dpkg-deb -x "$WORK"/debs/nginx_*.deb "$WORK/nginx-root"
pack() { # name binary
  local d=$OUTDIR/tools/$1
  mkdir -p "$d/lib"
  cp "$2" "$d/$1.bin"
  ldd "$2" | awk '/=> \//{print $3}' | while read -r lib; do
    case $(basename "$lib") in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;;
      *) cp -L "$lib" "$d/lib/" ;;
    esac
  done
  strip "$d/$1.bin" "$d"/lib/*.so* 2>/dev/null || true
  cat >"$d/$1" <<WRAP
#!/bin/sh
d=\$(dirname "\$(readlink -f "\$0")")
LD_LIBRARY_PATH="\$d/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$d/$1.bin" "\$@"
WRAP
  chmod +x "$d/$1" "$d/$1.bin"
}
pack nginx "$WORK/nginx-root/usr/sbin/nginx"
pack curl "$(command -v curl)"
"$OUTDIR/tools/nginx/nginx" -v
"$OUTDIR/tools/curl/curl" --version | head -n 1

{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD)"
  echo "runtime: $("$OUTDIR/runtime/bin/java" -version 2>&1 | head -n 1)"
  echo "jars: $(find "$OUTDIR/lib" -name '*.jar' | wc -l)"
  echo "nginx: $("$OUTDIR/tools/nginx/nginx" -v 2>&1)"
  echo "curl: $("$OUTDIR/tools/curl/curl" --version | head -n 1)"
} >"$OUTDIR/BUILD-INFO.txt"
cp bench/src/portable/run.sh "$OUTDIR/"
tar -C bench/target -cJf bench/target/store-bench.tar.xz store-bench
du -sh "$OUTDIR" bench/target/store-bench.tar.xz
