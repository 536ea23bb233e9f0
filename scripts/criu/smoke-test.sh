#!/usr/bin/env bash
# CRIU smoke test: a small Python server holding a listening TCP socket and an established connection (whose
# client, this test, is not dumped) is dumped with --tcp-established, restored, and must then answer on the old
# connection and on a new one, with its counter intact. Takes a second or two; cleans up after itself.
# Needs root. Usage: [CRIU=/path/to/criu] scripts/criu/smoke-test.sh
set -euo pipefail
criu=${CRIU:-$(command -v criu || echo /usr/local/sbin/criu)}
[ "$(id -u)" -eq 0 ] || { echo "smoke-test: CRIU needs root" >&2; exit 1; }
[ -x "$criu" ] || { echo "smoke-test: no CRIU at $criu" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "smoke-test: needs python3" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/thaw-criu-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/server.py" <<'PY'
# Answers each line with "pong LINE N", N counting the lines answered so far (state that must survive).
import os, selectors, socket, sys

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])

sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
pending, answered = {}, 0
while True:
    for key, _ in sel.select():
        sock = key.fileobj
        if sock is listener:
            conn, _ = listener.accept()
            sel.register(conn, selectors.EVENT_READ)
            continue
        data = sock.recv(4096)
        if not data:
            sel.unregister(sock)
            sock.close()
            pending.pop(sock, None)
            continue
        buf = pending.get(sock, b"") + data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            answered += 1
            sock.sendall(b"pong " + line + b" " + str(answered).encode() + b"\n")
        pending[sock] = buf
PY

cat >"$work/harness.py" <<'PY'
import ctypes, os, signal, socket, subprocess, sys, time

criu, work = sys.argv[1], sys.argv[2]
images = os.path.join(work, "images")
port_file = os.path.join(work, "port")
os.mkdir(images)
# Become a child subreaper: the restored server (whose parent, criu restore -d, exits) is then our child again,
# so we can kill and reap it.
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
signal.signal(signal.SIGTERM, lambda *_: sys.exit("smoke-test: FAILED: timed out"))


def fail(message, log=None):
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
        errors = [l for l in lines if "Error" in l] or lines[-20:]
        print("\n".join(errors[-20:]))
    sys.exit("smoke-test: FAILED: " + message)


def exchange(conn_file, sock, text, want):
    sock.sendall(text.encode() + b"\n")
    got = conn_file.readline().decode().strip()
    if got != want:
        fail(f"sent {text!r}, expected {want!r}, got {got!r}")


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # a zombie holds its PID until reaped
    except FileNotFoundError:
        return True


def criu_run(step, *args):
    log = os.path.join(images, step + ".log")
    start = time.monotonic()
    r = subprocess.run([criu, step, "-D", images, "-o", step + ".log", "-v4", "--shell-job",
                        "--tcp-established", *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        print(r.stdout.decode(errors="replace"))
        fail(f"criu {step} exited with {r.returncode}", log)
    return time.monotonic() - start


pid = None
try:
    with open(os.path.join(work, "server.log"), "wb") as out:
        server = subprocess.Popen([sys.executable, os.path.join(work, "server.py"), port_file], cwd=work,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    pid = server.pid
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if server.poll() is not None or time.monotonic() > deadline:
            fail("the test server did not start", os.path.join(work, "server.log"))
        time.sleep(0.02)
    with open(port_file) as f:
        port = int(f.read())

    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn_file = conn.makefile("rb")
    exchange(conn_file, conn, "one", "pong one 1")

    dump_s = criu_run("dump", "-t", str(pid))
    server.wait(timeout=10)  # reap it: restore needs its PID free ("Can't fork for PID: File exists")
    deadline = time.monotonic() + 10
    while not gone(pid):
        if time.monotonic() > deadline:
            fail(f"PID {pid} still taken 10 s after the dump")
        time.sleep(0.02)

    restore_s = criu_run("restore", "-d")
    if gone(pid):
        fail(f"no process {pid} after the restore", os.path.join(images, "restore.log"))
    exchange(conn_file, conn, "two", "pong two 2")  # the established connection survived
    with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
        exchange(fresh.makefile("rb"), fresh, "three", "pong three 3")  # so did the listener
    conn.close()
    print(f"smoke-test: OK: {criu} dumped PID {pid} with a listening and an established TCP socket "
          f"in {dump_s:.2f} s and restored it in {restore_s:.2f} s; it answers on both")
finally:
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            deadline = time.monotonic() + 5
            while not gone(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
PY

timeout -s TERM 60 python3 "$work/harness.py" "$criu" "$work"
