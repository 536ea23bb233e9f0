#!/usr/bin/env bash
# Makes a working CRIU available at /usr/local/sbin/criu (or on the PATH) for the CRIU tests and
# `thaw checkpoint/restore`. Quiet and fast when one already works; otherwise reinstalls a cached build, takes
# the distribution's package when it is new enough, or builds the pinned source below, then runs a dump/restore
# smoke test. Needs root (re-runs itself with sudo when there is one). When another apt-get or dpkg holds the package
# manager's lock (unattended-upgrades on a freshly booted machine), it says so and waits, up to 10 minutes.
#
# Usage: scripts/install-criu.sh [--verbose]
# Environment: THAW_CRIU_CACHE   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/thaw/criu-VERSION):
#                                the built binary and every log (apt.log, build.log, smoke-test.log) stay there.
#              THAW_CRIU_TARBALL a local copy of the source tarball, for machines that cannot download it
#                                (checked against the same SHA-256).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"

# Pinned source: Debian's criu 4.2.1-1 (sid/forky) upstream tarball, byte for byte the one its Sources index lists.
# 4.2 restricts SO_PASSCRED/SO_PASSSEC to unix and netlink sockets, so it dumps TCP sockets on Linux >= 6.16
# where 4.1.1 fails ("sockets.c: Can't get 1:16 opt: Operation not supported"); no patch is needed.
CRIU_VERSION=4.2.1
CRIU_TARBALL=criu_$CRIU_VERSION.orig.tar.xz
CRIU_SHA256=29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
CRIU_URLS=(
  "https://deb.debian.org/debian/pool/main/c/criu/$CRIU_TARBALL"
  # snapshot.debian.org keeps every file Debian ever published, addressed by its SHA-1.
  "https://snapshot.debian.org/file/943aa42a53e9678fee0c8cb85c544afa2d331229"
)
# What `make criu` needs (tools as CMD:PACKAGE, libraries as packages), checked against CRIU 4.2.1's own lists:
# criu/Makefile.packages names libprotobuf-dev, libprotobuf-c-dev, protobuf-c-compiler, protobuf-compiler,
# libnl-3-dev, libcap-dev and uuid-dev, and links -lprotobuf-c -lnl-3 -lnet -luuid (so libnet1-dev too, which its
# list leaves out); its python3-protobuf serves only crit, which is not built. Makefile.config adds, when present:
# libbsd-dev (setproctitle()), libgnutls28-dev (the page server's TLS), libnftables-dev (`--network-lock nftables`);
# libselinux, libbpf, libdrm (the amdgpu plugin) and gcc-multilib (32-bit tasks) are left out. iptables is not
# needed to build, but CRIU's default network lock for --tcp-established runs it.
BUILD_TOOLS=(make:make gcc:gcc pkg-config:pkg-config protoc:protobuf-compiler protoc-gen-c:protobuf-c-compiler
  python3:python3 xz:xz-utils curl:curl patch:patch)
BUILD_LIBS=(libprotobuf-dev libprotobuf-c-dev libnl-3-dev libnet1-dev libcap-dev uuid-dev libbsd-dev libgnutls28-dev
  libnftables-dev)
RUNTIME_TOOLS=(iptables:iptables)
DEST=/usr/local/sbin/criu

verbose=0
for arg in "$@"; do
  case "$arg" in
    -v|--verbose) verbose=1 ;;
    -h|--help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "install-criu: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

cache=${THAW_CRIU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw/criu-$CRIU_VERSION}

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo THAW_CRIU_CACHE="$cache" ${THAW_CRIU_TARBALL:+THAW_CRIU_TARBALL="$THAW_CRIU_TARBALL"} \
      "${BASH_SOURCE[0]}" "$@"
  fi
  echo "install-criu: CRIU needs root: run this as root (no sudo found)" >&2
  exit 1
fi

note() { [ "$verbose" -eq 0 ] || echo "install-criu: $*" >&2; }
say() { echo "install-criu: $*" >&2; }
die() { echo "install-criu: $*" >&2; exit 1; }

# On Linux >= 6.16 only CRIU >= 4.2 dumps TCP sockets (see above), so an older one does not count as working.
min_major=4 min_minor=0
IFS=. read -r kmajor kminor _ <<<"$(uname -r)"
if [ "$kmajor" -gt 6 ] || { [ "$kmajor" -eq 6 ] && [ "${kminor%%[!0-9]*}" -ge 16 ]; }; then
  min_minor=2
fi

# criu_ok BIN: BIN is CRIU >= min_major.min_minor and `criu check` says "Looks good".
criu_ok() {
  local bin=$1 version major minor out
  [ -x "$bin" ] || return 1
  version=$("$bin" --version 2>/dev/null | sed -n 's/^Version: *//p') || return 1
  IFS=. read -r major minor _ <<<"$version"
  [[ "$major" =~ ^[0-9]+$ && "${minor:-0}" =~ ^[0-9]+$ ]] || return 1
  if [ "$major" -lt "$min_major" ] || { [ "$major" -eq "$min_major" ] && [ "${minor:-0}" -lt "$min_minor" ]; }; then
    note "$bin is CRIU $version; need >= $min_major.$min_minor"
    return 1
  fi
  if ! out=$("$bin" check 2>&1) || ! grep -q 'Looks good' <<<"$out"; then
    note "$bin (CRIU $version): 'criu check' failed: $(tail -n 1 <<<"$out")"
    return 1
  fi
  note "$bin is CRIU $version and 'criu check' looks good"
}

runtime_tools_present() {
  local pair
  for pair in "${RUNTIME_TOOLS[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || return 1
  done
}

# find_working: sets working to the first CRIU (on the PATH, then $DEST) that passes criu_ok, else "".
find_working() {
  local bin
  working=""
  for bin in "$(command -v criu 2>/dev/null || true)" "$DEST"; do
    if [ -n "$bin" ] && criu_ok "$bin"; then
      working=$bin
      return 0
    fi
  done
}

# 1. Fast path: a working CRIU is already there.
find_working
if [ -n "$working" ] && runtime_tools_present; then
  exit 0
fi

mkdir -p "$cache" || die "cannot create the cache folder $cache"
apt_log=$cache/apt.log
# One installer at a time; one that waited finds what the other installed.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  say "waiting for another install-criu.sh (lock: $cache/.lock)"
  flock 9
  find_working
fi

# apt_install CMD:PACKAGE ...: lib.sh's installer, its output in apt.log; a wait for another apt-get is said here.
apt_install() {
  thaw_apt_wait || exit 1
  (thaw_apt_install "$@") >>"$apt_log" 2>&1 || die "apt-get install of $* failed; full log: $apt_log"
}

# apt_install_libs PACKAGE ...: the same for packages without a command; dpkg-query finds the missing ones,
# whose names then stand in for a command that is never on the PATH.
apt_install_libs() {
  local pkg pairs=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || pairs+=("$pkg:$pkg")
  done
  [ ${#pairs[@]} -eq 0 ] || apt_install "${pairs[@]}"
}

# install_binary SRC: copies SRC to $DEST under a temporary name, then renames it into place.
install_binary() {
  local tmp
  mkdir -p "$(dirname "$DEST")"
  tmp=$(mktemp "$DEST.XXXXXX")
  if ! install -m 0755 "$1" "$tmp" || ! mv -f "$tmp" "$DEST"; then
    rm -f "$tmp"
    die "could not install $1 as $DEST"
  fi
}

smoke_test() {
  local bin=$1 log=$cache/smoke-test.log
  say "smoke test: dump and restore of a process with TCP sockets (log: $log)"
  if ! CRIU="$bin" "$root/scripts/criu/smoke-test.sh" >"$log" 2>&1; then
    # the cause, here: the log is in a cache folder nobody looks at, on a CI machine gone after the run
    tail -n 25 "$log" | sed 's/^/install-criu:   /' >&2
    die "the CRIU smoke test failed with $bin; full log: $log"
  fi
}

if ! runtime_tools_present; then
  say "installing ${RUNTIME_TOOLS[*]#*:} (CRIU runs it; log: $apt_log)"
  apt_install "${RUNTIME_TOOLS[@]}"
fi
[ -z "$working" ] || exit 0

# 2. A build cached by an earlier run.
if [ -x "$cache/criu" ]; then
  if grep -q 'not found' <<<"$(ldd "$cache/criu" 2>&1 || true)"; then
    say "installing the libraries the cached CRIU needs (log: $apt_log)"
    apt_install_libs "${BUILD_LIBS[@]}"
  fi
  if criu_ok "$cache/criu"; then
    # Tested before it is installed: one that fails must not pass for a working CRIU on the next run's fast path.
    smoke_test "$cache/criu"
    install_binary "$cache/criu"
    say "installed the cached CRIU $CRIU_VERSION build from $cache as $DEST"
    exit 0
  fi
  note "the cached $cache/criu does not work here; building again"
fi

# 3. The distribution's package, when its candidate version is new enough.
candidate=$(apt-cache policy criu 2>/dev/null | sed -n 's/^ *Candidate: *//p')
case "$candidate" in ''|'(none)')
  thaw_apt_wait || exit 1
  thaw_apt_get update -qq >>"$apt_log" 2>&1 || true
  candidate=$(apt-cache policy criu 2>/dev/null | sed -n 's/^ *Candidate: *//p') ;;
esac
cand_version=${candidate#*:}
IFS=.- read -r cmajor cminor _ <<<"${cand_version:-0.0}"
if [[ "$cmajor" =~ ^[0-9]+$ && "$cminor" =~ ^[0-9]+$ ]] \
   && { [ "$cmajor" -gt "$min_major" ] || { [ "$cmajor" -eq "$min_major" ] && [ "$cminor" -ge "$min_minor" ]; }; }; then
  say "installing the distribution's criu $candidate (log: $apt_log)"
  apt_install /usr/sbin/criu:criu
  if criu_ok /usr/sbin/criu; then
    smoke_test /usr/sbin/criu
    exit 0
  fi
  say "the distribution's criu $candidate does not pass 'criu check'; building CRIU $CRIU_VERSION"
else
  note "the distribution's criu is ${candidate:-not available}; need >= $min_major.$min_minor"
fi

# 4. Build the pinned source.
build_log=$cache/build.log
: >"$build_log"
say "building CRIU $CRIU_VERSION in $cache (log: $build_log)"
start=$SECONDS
apt_install "${BUILD_TOOLS[@]}"
apt_install_libs "${BUILD_LIBS[@]}"

tarball=$cache/$CRIU_TARBALL
sha_ok() { echo "$CRIU_SHA256  $1" | sha256sum -c --status 2>/dev/null; }
if [ -n "${THAW_CRIU_TARBALL:-}" ]; then
  sha_ok "$THAW_CRIU_TARBALL" || die "$THAW_CRIU_TARBALL does not have the pinned SHA-256 $CRIU_SHA256"
  cp "$THAW_CRIU_TARBALL" "$tarball"
fi
if ! [ -f "$tarball" ] || ! sha_ok "$tarball"; then
  rm -f "$tarball"
  for url in "${CRIU_URLS[@]}"; do
    echo "downloading $url" >>"$build_log"
    if curl -fsSL --retry 2 --connect-timeout 15 -o "$tarball.part" "$url" >>"$build_log" 2>&1; then
      if sha_ok "$tarball.part"; then
        mv -f "$tarball.part" "$tarball"
        break
      fi
      echo "$url: SHA-256 $(sha256sum "$tarball.part" | cut -d' ' -f1), expected $CRIU_SHA256; refused" \
        | tee -a "$build_log" >&2
    fi
    rm -f "$tarball.part"
  done
  [ -f "$tarball" ] || die "could not download CRIU $CRIU_VERSION with SHA-256 $CRIU_SHA256; full log: $build_log"
fi

src=$cache/src
rm -rf "$src"
mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1 >>"$build_log" 2>&1 || die "could not unpack $tarball; full log: $build_log"
for p in "$root"/scripts/criu/*.patch; do
  [ -e "$p" ] || continue
  echo "applying $p" >>"$build_log"
  patch -d "$src" -p1 --forward <"$p" >>"$build_log" 2>&1 || die "patch $p does not apply; full log: $build_log"
done
make -C "$src" -j2 criu >>"$build_log" 2>&1 || die "'make criu' failed; full log: $build_log"
install -m 0755 "$src/criu/criu" "$cache/criu.tmp" && mv -f "$cache/criu.tmp" "$cache/criu"
rm -rf "$src"
echo "built in $((SECONDS - start)) s" >>"$build_log"
criu_ok "$cache/criu" || die "the CRIU $CRIU_VERSION just built fails 'criu check'; run: $cache/criu check"
smoke_test "$cache/criu"
install_binary "$cache/criu"
say "built CRIU $CRIU_VERSION in $((SECONDS - start)) s and installed it as $DEST"
