package dev.thaw.bench;

import dev.thaw.testkit.ThrottlingProxy;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A per-connection bandwidth limit in front of an origin listening on 127.0.0.1. Tries kernel pacing first: a
 * {@code prio} qdisc on {@code lo} with an {@code fq maxrate} child on a band that only the origin's traffic (a
 * {@code u32} match on its source port) reaches; {@code fq} paces each flow separately. When the kernel lacks those
 * qdiscs (or {@code tc} is refused), falls back to {@link ThrottlingProxy}. Closing removes whatever was installed; a
 * shutdown hook does it too if the JVM is stopped first.
 */
final class Throttle implements AutoCloseable {
  static final double RATE_BYTES = 100e6;
  static final long BURST_BYTES = 1 << 20;

  private final String method;
  private final int port;
  private final ThrottlingProxy proxy;
  private final Thread hook;
  private volatile boolean removed;

  private Throttle(String method, int port, ThrottlingProxy proxy) {
    this.method = method;
    this.port = port;
    this.proxy = proxy;
    this.hook = new Thread(this::remove, "throttle-cleanup");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** The port clients connect to for throttled access. */
  int port() {
    return port;
  }

  /** How the limit is enforced, for the report. */
  String method() {
    return method;
  }

  static Throttle install(int originPort, PrintStream log) throws IOException {
    long rateBits = (long) (RATE_BYTES * 8);
    // Band 4 of a 4-band prio qdisc is unused by the default priomap: only the filter sends traffic there.
    List<List<String>> steps = List.of(
        List.of("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "prio", "bands", "4",
            "priomap", "1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1"),
        List.of("tc", "qdisc", "add", "dev", "lo", "parent", "1:4", "handle", "40:", "fq",
            "maxrate", rateBits / 1_000_000 + "mbit", "quantum", "65536", "initial_quantum", "" + BURST_BYTES),
        List.of("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "sport", "" + originPort, "0xffff", "flowid", "1:4"));
    List<String> failures = new ArrayList<>();
    boolean ok = true;
    for (List<String> step : steps) {
      String err = run(step);
      if (err != null) {
        failures.add(String.join(" ", step) + ": " + err);
        ok = false;
        break;
      }
    }
    if (ok) {
      log.printf("throttle: kernel pacing, tc prio + fq maxrate %d mbit on lo, u32 sport %d%n", rateBits / 1_000_000,
          originPort);
      return new Throttle("tc fq maxrate (kernel pacing per flow)", originPort, null);
    }
    removeQdisc();
    log.printf("throttle: tc refused (%s); using the throttling proxy in bench/ (token bucket per connection, %.0f MB/s,"
        + " burst %d KiB)%n", failures.getFirst().trim(), RATE_BYTES / 1e6, BURST_BYTES >> 10);
    ThrottlingProxy proxy = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", originPort), RATE_BYTES, BURST_BYTES);
    return new Throttle("proxy in bench/ (token bucket per connection, burst 1 MiB)", proxy.port(), proxy);
  }

  private static String run(List<String> cmd) {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes()).trim();
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return "timed out";
      }
      return p.exitValue() == 0 ? null : (out.isEmpty() ? "exit " + p.exitValue() : out);
    } catch (IOException e) {
      return e.getMessage();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
  }

  private static void removeQdisc() {
    // only our own root prio qdisc (handle 1:) is removed; anything else on lo is left alone
    try {
      Process p = new ProcessBuilder("tc", "qdisc", "show", "dev", "lo").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes());
      p.waitFor(10, TimeUnit.SECONDS);
      if (out.contains("qdisc prio 1: root")) {
        run(List.of("tc", "qdisc", "del", "dev", "lo", "root", "handle", "1:", "prio"));
      }
    } catch (IOException e) {
      // tc missing: nothing was installed
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private synchronized void remove() {
    if (removed) {
      return;
    }
    removed = true;
    if (proxy != null) {
      proxy.close();
    } else {
      removeQdisc();
    }
  }

  @Override
  public void close() {
    remove();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down already
    }
  }
}
