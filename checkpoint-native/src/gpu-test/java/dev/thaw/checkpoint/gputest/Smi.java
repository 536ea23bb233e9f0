package dev.thaw.checkpoint.gputest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * What nvidia-smi says about GPU memory: per process (to see a checkpointed process's memory leave the GPU) and for
 * GPU 0 as a whole (which still works where a container's PIDs are not the ones nvidia-smi lists). Every call has a
 * timeout; a failed call gives null, never an exception, since these readings only support the check.
 */
final class Smi {
  private Smi() {}

  /** pid to used MiB for every compute process nvidia-smi lists, or null when it cannot be asked. */
  static Map<Long, Long> computeApps() {
    String out = run(List.of("nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"));
    if (out == null) {
      return null;
    }
    Map<Long, Long> apps = new HashMap<>();
    for (String line : out.split("\n")) {
      String[] f = line.split(",");
      if (f.length < 2) {
        continue;
      }
      try {
        long pid = Long.parseLong(f[0].strip());
        String mem = f[1].strip();
        // "[N/A]" where the driver does not account memory per process: listed, amount unknown (-1)
        apps.merge(pid, mem.matches("\\d+") ? Long.parseLong(mem) : -1L, (a, b) -> a < 0 || b < 0 ? -1L : a + b);
      } catch (NumberFormatException e) {
        // a header or a note: skip
      }
    }
    return apps;
  }

  /**
   * MiB that nvidia-smi lists for {@code pid}; null when it could not be asked, when it does not list the process
   * (some containers hide every PID) or when it lists no amount.
   */
  static Long listedMiB(long pid, Map<Long, Long> apps) {
    Long mib = apps == null ? null : apps.get(pid);
    return mib == null || mib < 0 ? null : mib;
  }

  /** After a checkpoint: the process no longer listed counts as 0 MiB; null only when nvidia-smi failed. */
  static Long remainingMiB(long pid, Map<Long, Long> apps) {
    if (apps == null) {
      return null;
    }
    Long mib = apps.getOrDefault(pid, 0L);
    return mib < 0 ? null : mib;
  }

  /** GPU 0's used memory in MiB, or null. */
  static Long gpuUsedMiB() {
    String out = run(List.of("nvidia-smi", "-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"));
    if (out == null) {
      return null;
    }
    try {
      return Long.parseLong(out.strip().split("\n")[0].strip());
    } catch (NumberFormatException e) {
      return null;
    }
  }

  /** GPU 0's name, driver and memory, for the report. */
  static String summary() {
    String out = run(List.of("nvidia-smi", "-i", "0", "--query-gpu=name,driver_version,memory.total,memory.used",
        "--format=csv,noheader"));
    return out == null ? "nvidia-smi did not answer" : out.strip();
  }

  private static String run(List<String> cmd) {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      p.getOutputStream().close();
      if (!p.waitFor(20, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return null;
      }
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      return p.exitValue() == 0 ? out : null;
    } catch (IOException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }
}
