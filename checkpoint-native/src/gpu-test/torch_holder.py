"""A PyTorch process that holds known data on cuda:0, for the CUDA checkpoint check (GpuCheck).

It fills GPU_TEST_GIB GiB (default 4) with tensors whose every value can be recomputed (an integer hash of the
index, and seeded normal floats, like model weights), then answers one-line commands:

  verify          recompute every value on the GPU and compare: "OK wrong=0 ..." or "FAIL wrong=N ..."
  busy SECONDS    launch one kernel that spins for SECONDS and block a thread in torch.cuda.synchronize()
                  on it, so that a checkpoint lock cannot settle: "BUSY ..."
  h2d             time plain host-to-device (pinned and pageable) and device-to-host copies of the same
                  number of bytes, the floor a restore is compared with: "H2D ..."
  quit            "BYE", then exit

Commands come on stdin and answers go to stdout (one line each), or, with --control DIR, commands come as the
file DIR/cmd (read, then removed) and answers go to stdout, which the caller points at a file: that shape holds
no pipe to its parent, so CRIU can dump it and restore it. Everything else goes to stderr. The process exits by
itself after --max-seconds, and when stdin closes, so it never outlives a failed check.
"""

import argparse
import os
import sys
import threading
import time

CHUNK_BYTES = 256 << 20  # each tensor: small enough that recomputing one for a comparison is cheap
INT_MULT = 2654435761  # Knuth's multiplicative hash: neighbouring indices get unrelated values


def log(msg):
    print(f"[torch_holder {os.getpid()}] {msg}", file=sys.stderr, flush=True)


def answer(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Holder:
    def __init__(self, torch, total_bytes):
        self.torch = torch
        self.dev = torch.device("cuda:0")
        self.chunks = max(1, total_bytes // CHUNK_BYTES)
        self.elems = CHUNK_BYTES // 4  # int32 and float32 alike
        self.tensors = []
        self.sums = []
        self.busy_thread = None

    def expected(self, i):
        """Chunk i's values, computed afresh on the GPU: even chunks an int32 hash, odd ones seeded randn."""
        torch = self.torch
        if i % 2 == 0:
            idx = torch.arange(i * self.elems, (i + 1) * self.elems, dtype=torch.int64, device=self.dev)
            return ((idx * INT_MULT + 12345) & 0x7FFFFFFF).to(torch.int32)
        g = torch.Generator(device=self.dev)
        g.manual_seed(1000 + i)
        return torch.randn(self.elems, generator=g, dtype=torch.float32, device=self.dev)

    def checksum(self, t):
        # the bit patterns summed as integers: a float that came back as a different NaN still counts
        return int(t.view(self.torch.int32).to(self.torch.int64).sum().item())

    def fill(self):
        for i in range(self.chunks):
            t = self.expected(i)
            self.tensors.append(t)
            self.sums.append(self.checksum(t))
        self.torch.cuda.synchronize()

    def nbytes(self):
        return self.chunks * CHUNK_BYTES

    def wait_busy(self, timeout):
        if self.busy_thread is not None:
            self.busy_thread.join(timeout)
            if self.busy_thread.is_alive():
                raise RuntimeError(f"the busy kernel did not finish within {timeout} s")
            self.busy_thread = None

    def verify(self):
        self.wait_busy(120)
        wrong = 0
        bad_sums = 0
        for i, t in enumerate(self.tensors):
            wrong += int((t != self.expected(i)).sum().item())
            if self.checksum(t) != self.sums[i]:
                bad_sums += 1
        self.torch.cuda.synchronize()
        n = self.chunks * self.elems
        verdict = "OK" if wrong == 0 and bad_sums == 0 else "FAIL"
        return f"{verdict} wrong={wrong} checked={n} bad_checksums={bad_sums} chunks={self.chunks}"

    def busy(self, seconds):
        torch = self.torch
        self.wait_busy(120)
        sleep = getattr(torch.cuda, "_sleep", None)
        if sleep is not None:
            # calibrate the spin kernel's cycles per millisecond (twice: the first run lets an idle GPU raise its
            # clock), then launch one kernel of the length asked for
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            for _ in range(2):
                start.record()
                sleep(100_000_000)
                end.record()
                end.synchronize()
            per_ms = 100_000_000 / max(start.elapsed_time(end), 1e-3)
            sleep(int(per_ms * seconds * 1000))
            how = f"spin kernel ({per_ms / 1e6:.2f} Gcycles/s)"
        else:
            # no spin kernel in this torch: queue enough large matrix products to last about that long
            a = torch.randn(8192, 8192, device=self.dev)
            a @ a  # the first product also starts cuBLAS: not timed
            torch.cuda.synchronize()
            start = time.perf_counter()
            a @ a
            torch.cuda.synchronize()
            one = max(time.perf_counter() - start, 1e-4)
            for _ in range(max(1, int(seconds / one))):
                a @ a
            how = f"{int(seconds / one)} matrix products"
        # a thread waits inside a CUDA call while the kernel runs, as a serving thread would
        self.busy_thread = threading.Thread(target=torch.cuda.synchronize, daemon=True)
        self.busy_thread.start()
        return f"BUSY seconds={seconds} how={how.replace(' ', '_')}"

    def h2d(self):
        torch = self.torch
        self.wait_busy(120)
        n = self.nbytes()
        dst = torch.empty(n, dtype=torch.uint8, device=self.dev)
        pinned = torch.empty(n, dtype=torch.uint8, pin_memory=True)
        pinned.fill_(1)
        pageable = torch.empty(n, dtype=torch.uint8)
        pageable.fill_(1)  # touched, so the copy does not also count first-touch page faults
        warm = 64 << 20
        dst[:warm].copy_(pinned[:warm], non_blocking=True)
        pinned[:warm].copy_(dst[:warm], non_blocking=True)
        torch.cuda.synchronize()

        def timed(fn, repeats):
            best = float("inf")
            for _ in range(repeats):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            return n / best / 1e9

        pinned_gbps = timed(lambda: dst.copy_(pinned, non_blocking=True), 3)
        pageable_gbps = timed(lambda: dst.copy_(pageable), 2)
        d2h_pinned_gbps = timed(lambda: pinned.copy_(dst, non_blocking=True), 3)
        del dst, pinned, pageable
        torch.cuda.empty_cache()
        return (f"H2D bytes={n} pinned_gbps={pinned_gbps:.2f} pageable_gbps={pageable_gbps:.2f}"
                f" d2h_pinned_gbps={d2h_pinned_gbps:.2f}")

    def handle(self, line):
        parts = line.split()
        if not parts:
            return None
        cmd = parts[0]
        try:
            if cmd == "verify":
                return self.verify()
            if cmd == "busy":
                return self.busy(float(parts[1]) if len(parts) > 1 else 5.0)
            if cmd == "h2d":
                return self.h2d()
            if cmd == "quit":
                return "BYE"
            return f"ERROR unknown command {cmd!r}"
        except Exception as e:  # the caller reads the one line; the details go to stderr
            log(f"{cmd} failed: {e!r}")
            return f"ERROR {cmd} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def commands_from_stdin():
    for line in sys.stdin:
        yield line.strip()
    log("stdin closed: exiting")
    os._exit(0)  # no CUDA teardown: the process may be locked, and exiting must not wait on that


def commands_from_dir(control):
    path = os.path.join(control, "cmd")
    while True:
        try:
            with open(path) as f:  # opened, read and closed at once: no descriptor stays open for CRIU to see
                text = f.read()
            os.unlink(path)
        except FileNotFoundError:
            time.sleep(0.02)
            continue
        for line in text.splitlines():
            yield line.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gib", type=float, default=float(os.environ.get("GPU_TEST_GIB", "4")))
    p.add_argument("--control", help="read commands from the file CONTROL/cmd instead of stdin")
    p.add_argument("--max-seconds", type=float, default=float(os.environ.get("GPU_TEST_HOLDER_MAX_S", "600")))
    args = p.parse_args()

    def watchdog():
        time.sleep(args.max_seconds)
        log(f"still running after {args.max_seconds} s: exiting")
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()

    try:
        import torch
    except ImportError as e:
        answer(f"ERROR cannot import torch: {e}")
        return 2
    if not torch.cuda.is_available():
        answer("ERROR torch.cuda.is_available() is False")
        return 2
    h = Holder(torch, int(args.gib * (1 << 30)))
    t0 = time.perf_counter()
    h.fill()
    fill_s = time.perf_counter() - t0
    answer(f"READY bytes={h.nbytes()} chunks={h.chunks} fill_s={fill_s:.2f} torch={torch.__version__}"
           f" cuda={torch.version.cuda} pid={os.getpid()}")
    source = commands_from_dir(args.control) if args.control else commands_from_stdin()
    for line in source:
        reply = h.handle(line)
        if reply is None:
            continue
        answer(reply)
        if reply == "BYE":
            sys.stdout.flush()
            os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
