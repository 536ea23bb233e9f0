package dev.thaw.bench;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Ready and first-4-KiB times of a mount made through a sidecar that is already running, as in a deployment: the
 * server's pod starts beside a sidecar that has been up all along. {@code POST /v1/mounts} is sent at t0; ready is
 * when {@code stat} of the shard succeeds, then the first 4 KiB are read. Each repeat gets a fresh sidecar with an
 * empty chunk cache, started in the bench's JVM before t0, so its classes are loaded and compiled as a long-running
 * sidecar's are after earlier mounts; the first repeat is the first in this JVM and is reported apart.
 */
final class SidecarMountTimes {
  private SidecarMountTimes() {}

  static Map<String, Object> measure(String origin, String model, String file, Path work, int repeats,
      PrintStream log) throws Exception {
    double[] ready = new double[repeats + 1];
    double[] ttfb = new double[repeats + 1];
    for (int r = 0; r <= repeats; r++) {
      Path node = work.resolve("sidecar-" + r);
      ModelGenerator.deleteTree(node);
      try (RunningSidecar sidecar = RunningSidecar.start(origin, node)) {
        Machine.dropPageCache(log);
        long t0 = System.nanoTime();
        RunningSidecar.Mount mount = sidecar.mount(model, "auto");
        Path shard = mount.mountpoint().resolve(file);
        ready[r] = RunningSidecar.awaitVisible(shard, t0, 60_000);
        long t1 = System.nanoTime();
        MountBench.readFirst(shard, MountBench.TTFB_BYTES);
        ttfb[r] = (System.nanoTime() - t1) / 1e6;
        log.printf(Locale.ROOT, "  sidecar mount %d%s: ready %.1f ms, first 4 KiB %.1f ms%n", r,
            r == 0 ? " (the first in this JVM)" : "", ready[r], ttfb[r]);
        sidecar.unmount(mount);
      } finally {
        ModelGenerator.deleteTree(node);
      }
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("what", "POST /v1/mounts (prefetch auto) to a running sidecar until stat of the shard succeeds, then its "
        + "first 4 KiB; a fresh sidecar and empty cache per repeat, in the bench's JVM (warm, as a long-running "
        + "sidecar); median of the repeats after the first");
    double[] rest = Arrays.copyOfRange(ready, 1, ready.length);
    double[] restTtfb = Arrays.copyOfRange(ttfb, 1, ttfb.length);
    out.put("ready_ms", MountBench.round(MountBench.median(rest)));
    out.put("ttfb_ms", MountBench.round(MountBench.median(restTtfb)));
    out.put("first_in_jvm_ready_ms", MountBench.round(ready[0]));
    out.put("first_in_jvm_ttfb_ms", MountBench.round(ttfb[0]));
    out.put("ready_ms_all", MountBench.roundAll(rest));
    out.put("ttfb_ms_all", MountBench.roundAll(restTtfb));
    return out;
  }
}
