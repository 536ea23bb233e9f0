#!/usr/bin/env bash
# Runs the README's two commands, ./thaw demo and then ./scripts/test, on a freshly installed minimal Debian 12, as a
# new user would: a `debootstrap --variant=minbase bookworm` root file system with only this machine's CA
# certificates and JDK 25 copied in, and a fresh clone of this repository's HEAD commit. Each command runs in a
# mount and PID namespace of its own, entered with pivot_root (CRIU refuses a chroot: "The root task has another
# root than mntns"); whatever it leaves running ends with its namespace. Prints each step's time and PASS or FAIL;
# exits 0 only when both commands pass. Not run in CI: it needs root, the network (Debian's mirror, Maven Central),
# about 10 GB under the work folder, and takes 20-40 minutes on 2 cores.
#
# Usage: scripts/fresh-debian-check.sh [--work DIR] [--only demo|test] [--keep] [--mirror URL]
#   --work DIR    where the root file system and the logs go (default /var/tmp/thaw-fresh-debian)
#   --only CMD    run only `demo` or only `test` (each on a root file system of its own making)
#   --keep        keep the root file system afterwards (default: kept only when a command fails)
#   --mirror URL  the Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"

work=/var/tmp/thaw-fresh-debian only="" keep=0 mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --mirror) mirror=$2; shift 2 ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fresh-debian-check: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$only" in ''|demo|test) ;; *) echo "fresh-debian-check: --only takes demo or test, not '$only'" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian-check: needs root (debootstrap, namespaces, pivot_root)" >&2; exit 1; }

say() { echo "fresh-debian-check: $*" >&2; }
thaw_require_jdk25 # the JDK copied in: the README asks a new user for a JDK 25 and nothing else
thaw_apt_install debootstrap:debootstrap unshare:util-linux

work=$(mkdir -p "$work" && cd "$work" && pwd)
rootfs=$work/rootfs
commit=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  say "checking the committed HEAD $commit; the uncommitted changes in $root are not in it"
fi

# remove_rootfs: deletes the root file system, never through a mount into the host (/dev, /sys) left inside it.
remove_rootfs() {
  [ -e "$rootfs" ] || return 0
  if grep -qF " $rootfs/" /proc/self/mounts || grep -qF " $rootfs " /proc/self/mounts; then
    say "something is still mounted under $rootfs (see /proc/self/mounts); unmount it, then run this again"
    exit 1
  fi
  rm -rf --one-file-system "$rootfs"
}

# make_rootfs: a minimal Debian 12 with the CA certificates, name resolution and JDK 25 of this machine, and a fresh
# clone of the repository at $commit in /root/thaw.
make_rootfs() {
  local start=$SECONDS
  remove_rootfs
  say "debootstrap --variant=minbase bookworm $rootfs (log: $work/debootstrap.log)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; full log: $work/debootstrap.log"; exit 1; }
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/lib/jvm" "$rootfs/usr/local/share/ca-certificates"
  # The bundle serves until Debian's ca-certificates package comes in and rebuilds it from Mozilla's list and the
  # local CAs in /usr/local/share/ca-certificates: copied too, or a TLS-inspecting proxy's CA would be lost then.
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -rL /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
  fi
  cp -L /etc/resolv.conf /etc/hosts "$rootfs/etc/"
  # -L: the JDK's trust store (lib/security/cacerts) may be a link into /etc/ssl, which the new root lacks.
  cp -rL "$JAVA_HOME" "$rootfs/usr/lib/jvm/$(basename "$JAVA_HOME")"
  git clone -q "$root" "$rootfs/root/thaw"
  git -C "$rootfs/root/thaw" -c advice.detachedHead=false checkout -q "$commit"
  say "root file system ready in $((SECONDS - start)) s: Debian $(cat "$rootfs/etc/debian_version"), $(basename "$JAVA_HOME"), thaw at ${commit:0:12}"
}

# run_in_root NAME COMMAND: runs COMMAND in /root/thaw of the new root, in mount and PID namespaces of its own;
# its output goes to $work/NAME.log. Returns COMMAND's exit status.
run_in_root() {
  local name=$1 command=$2
  # pivot_root needs the new root to be a mount point, and the old root private (unshare's default propagation).
  unshare --mount --pid --fork --kill-child -- bash -euc '
    new=$1
    mount --bind "$new" "$new"
    mount -t proc proc "$new/proc"
    mount --rbind /sys "$new/sys"
    mount --rbind /dev "$new/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$new/run"
    mkdir -p "$new/.old-root"
    cd "$new"
    pivot_root . .old-root
    umount -l /.old-root
    rmdir /.old-root
    cd /root/thaw
    # A session of its own, as a login has: CRIU refuses to dump a process whose session leader is outside its PID
    # namespace ("A session leader of N is outside of its pid namespace"), as the caller'"'"'s would be.
    exec setsid --wait env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$2"
  ' bash "$rootfs" "$command" >"$work/$name.log" 2>&1
}

results=() failed=0 made=0 total_start=$SECONDS
check() {
  local name=$1 command=$2 start status
  [ -z "$only" ] || [ "$only" = "$name" ] || return 0
  if [ "$made" -eq 0 ]; then # never one left by an earlier run
    make_rootfs
    made=1
  fi
  say "running '$command' in the fresh Debian 12 (log: $work/$name.log)"
  start=$SECONDS
  if run_in_root "$name" "$command"; then status=PASS; else status="FAIL (exit status $?)"; failed=1; fi
  results+=("$(printf '%-16s %s in %d s (log: %s)' "$command" "$status" $((SECONDS - start)) "$work/$name.log")")
  say "$command: $status in $((SECONDS - start)) s"
  [ "$status" = PASS ] || tail -n 20 "$work/$name.log" | sed 's/^/  | /' >&2
}

# In the README's order, on one machine: the tests run where the demo has run, as a new user would do.
check demo "./thaw demo"
check test "./scripts/test"

# A failure keeps the root file system: the logs the commands name (CRIU's build log, surefire's reports) are in it.
[ "$keep" -eq 1 ] || [ "$failed" -eq 1 ] || remove_rootfs
echo "fresh-debian-check: Debian 12 (debootstrap minbase), thaw ${commit:0:12}, $(( (SECONDS - total_start) / 60 )) min in all"
printf '  %s\n' "${results[@]}"
[ ! -d "$rootfs" ] || echo "  the root file system is kept in $rootfs (paths in the logs are under it)"
exit "$failed"
