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

# thaw_apt_install CMD:PACKAGE ... installs PACKAGE when CMD is not on the PATH.
thaw_apt_install() {
  local missing=() pair cmd pkg sudo=""
  for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "thaw: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
      exit 1
    fi
  fi
  echo "thaw: installing ${missing[*]} with apt-get" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}
