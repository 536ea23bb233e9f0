# Shared by ./thaw and scripts/test: find a JDK 25 and install missing Debian packages.
# shellcheck shell=bash

thaw_find_jdk25() {
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*; do
    [ -n "$candidate" ] && [ -x "$candidate/bin/javac" ] || continue
    # The JDK's release file names its version; reading it costs nothing, starting a JVM to ask would.
    if grep -qE '^JAVA_VERSION="25(\.|")' "$candidate/release" 2>/dev/null \
       || { [ ! -f "$candidate/release" ] && "$candidate/bin/java" -version 2>&1 | grep -qE 'version "25(\.|")'; }; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

thaw_require_jdk25() {
  if ! JAVA_HOME=$(thaw_find_jdk25); then
    cat >&2 <<'MSG'
thaw: no JDK 25 found (looked at $JAVA_HOME and /usr/lib/jvm/*).
Install one, then run this again, for example:
  Debian/Ubuntu (Adoptium's apt repository, see https://adoptium.net/installation/linux/):
    apt-get install -y temurin-25-jdk
  or unpack a JDK 25 from https://adoptium.net/temurin/releases/?version=25 and set JAVA_HOME to it.
MSG
    exit 1
  fi
  export JAVA_HOME
  export PATH="$JAVA_HOME/bin:$PATH"
}

# thaw_apt_lock_holder prints "process PID (NAME)" for the process holding a lock of apt or dpkg, or nothing.
# apt-get fails at once on a held lock ("Could not get lock"), as it is held for minutes by unattended-upgrades on a
# freshly booted machine. dpkg and apt lock with fcntl(2), so /proc/locks names the holder.
thaw_apt_lock_holder() {
  local f ino pid
  for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
    ino=$(stat -c %i "$f" 2>/dev/null) || continue
    pid=$(awk -v ino="$ino" '{ split($6, id, ":"); if (id[3] == ino && $5 > 0) { print $5; exit } }' /proc/locks 2>/dev/null)
    if [ -n "$pid" ] && [ "$pid" != "$$" ]; then
      echo "process $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo gone))"
      return 0
    fi
  done
}

# thaw_apt_wait waits up to 10 minutes, saying so on stderr, until no apt-get or dpkg holds the package manager's lock.
thaw_apt_wait() {
  local holder deadline=$((SECONDS + 600)) waited=0
  while holder=$(thaw_apt_lock_holder) && [ -n "$holder" ]; do
    if [ "$waited" -eq 0 ]; then
      echo "thaw: waiting for $holder to release the package manager's lock (up to 10 minutes)" >&2
      waited=1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "thaw: $holder still holds the package manager's lock after 10 minutes; let it finish, then run this again" >&2
      return 1
    fi
    sleep 1
  done
  [ "$waited" -eq 0 ] || echo "thaw: the package manager's lock is free; going on" >&2
}

# thaw_apt_get ARGS... runs apt-get (through sudo when not root) once the lock is free (thaw_apt_wait). apt-get's own
# DPkg::Lock::Timeout covers a lock taken meanwhile, but only dpkg's: `apt-get update` would still fail at once on the
# package lists' lock, hence the wait first.
thaw_apt_get() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "thaw: apt-get $* needs root, and there is no sudo" >&2; return 1; }
    sudo="sudo"
  fi
  thaw_apt_wait || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# thaw_apt_install CMD:PACKAGE ... installs PACKAGE when CMD is not on the PATH. The package lists are updated first
# only when they lack a package (a fresh debootstrap has none), else only when the install fails on stale ones.
thaw_apt_install() {
  local missing=() pair cmd pkg update=0
  for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "thaw: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
    exit 1
  fi
  echo "thaw: installing ${missing[*]} with apt-get" >&2
  for pkg in "${missing[@]}"; do
    case "$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: *//p')" in ''|'(none)') update=1 ;; esac
  done
  [ "$update" -eq 0 ] || thaw_apt_get update -qq >&2
  if ! thaw_apt_get install -y -qq "${missing[@]}" >&2; then
    [ "$update" -eq 0 ] || return 1
    echo "thaw: updating the package lists and trying again" >&2
    thaw_apt_get update -qq >&2
    thaw_apt_get install -y -qq "${missing[@]}" >&2
  fi
}
