package dev.thaw.bench;

import dev.thaw.fuse.MountTable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A FUSE mount command run in the foreground as a child process ({@code thaw mount}, {@code rclone mount},
 * {@code s3fs -f}), timed from its exec until a file shows up under the mount point. Closing stops it with SIGTERM
 * (the clean shutdown each of them handles: unmount, and for Thaw saving a recorded profile) and, should the mount
 * still be listed afterwards, detaches it with {@code fusermount3 -u -z}, so no mount outlives the bench.
 */
final class MountProcess implements AutoCloseable {
  private final String name;
  private final Process process;
  private final Path mountPoint;
  private final Path logFile;
  private final long startNanos;

  private MountProcess(String name, Process process, Path mountPoint, Path logFile, long startNanos) {
    this.name = name;
    this.process = process;
    this.mountPoint = mountPoint;
    this.logFile = logFile;
    this.startNanos = startNanos;
  }

  /**
   * Execs {@code cmd} with its output to {@code logFile}; {@code env} is added to this process's environment and the
   * variables in {@code unset} are removed.
   */
  static MountProcess start(String name, List<String> cmd, Map<String, String> env, Set<String> unset, Path mountPoint,
      Path logFile) throws IOException {
    clear(mountPoint);
    Files.createDirectories(mountPoint);
    Files.createDirectories(logFile.getParent());
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.to(logFile.toFile()));
    pb.environment().keySet().removeAll(unset);
    pb.environment().putAll(env);
    long t0 = System.nanoTime();
    Process p = pb.start();
    return new MountProcess(name, p, mountPoint, logFile, t0);
  }

  /** Lazily unmounts whatever is left at {@code mountPoint} (a stale mount from an interrupted run). */
  static void clear(Path mountPoint) throws IOException {
    if (MountTable.find(mountPoint).isPresent()) {
      MountTable.unmount(mountPoint.toAbsolutePath().normalize(), true);
    }
  }

  /**
   * Waits until {@code file} exists, polling every 0.2 ms.
   *
   * @return milliseconds from the exec of the mount command
   * @throws IOException when the command exits first or {@code timeoutMs} passes (with the tail of its log)
   */
  double awaitVisible(Path file, long timeoutMs) throws IOException {
    long deadline = startNanos + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    while (true) {
      if (Files.exists(file)) {
        return (System.nanoTime() - startNanos) / 1e6;
      }
      if (!process.isAlive()) {
        throw new IOException(name + " exited with " + process.exitValue() + " before " + file + " appeared: " + logTail());
      }
      if (System.nanoTime() > deadline) {
        throw new IOException(name + ": " + file + " did not appear within " + timeoutMs + " ms: " + logTail());
      }
      LockSupport.parkNanos(200_000);
    }
  }

  long pid() {
    return process.pid();
  }

  Path mountPoint() {
    return mountPoint;
  }

  /** CPU time (user + system) of the mount process so far, in seconds; 0 when it cannot be read. */
  double cpuSeconds() {
    return cpuSeconds(process.pid());
  }

  /** CPU time of any process from {@code /proc/PID/stat} (utime + stime, 100 ticks per second). */
  static double cpuSeconds(long pid) {
    double[] t = cpuTimes(pid);
    return t[0] + t[1];
  }

  /**
   * utime, stime, cutime and cstime of a process in seconds (the last two: its children already waited for), from
   * {@code /proc/PID/stat}; zeros when it cannot be read.
   */
  static double[] cpuTimes(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      // fields after the command: state(3) ... utime(14) stime(15) cutime(16) cstime(17): index 11 to 14 here
      double[] t = new double[4];
      for (int i = 0; i < 4; i++) {
        t[i] = Long.parseLong(f[11 + i]) / 100.0;
      }
      return t;
    } catch (IOException | RuntimeException e) {
      return new double[4];
    }
  }

  /**
   * User and system CPU seconds of a process's live threads, summed by thread name with its trailing number dropped
   * ("thaw-fetch-3" and "thaw-fetch-4" count as "thaw-fetch", "C2 CompilerThre" stays itself): where a daemon's CPU
   * goes (the JIT, the collector, the fetch workers, the FUSE threads; in the kernel or not). Empty when
   * {@code /proc/PID/task} cannot be read.
   */
  static java.util.Map<String, double[]> threadCpuSeconds(long pid) {
    java.util.Map<String, double[]> byName = new java.util.TreeMap<>();
    try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
      for (Path task : (Iterable<Path>) tasks::iterator) {
        try {
          String stat = Files.readString(task.resolve("stat"));
          String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replaceAll("[-#_ ]?\\d+$", "");
          String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
          double[] t = byName.computeIfAbsent(name, n -> new double[2]);
          t[0] += Long.parseLong(f[11]) / 100.0;
          t[1] += Long.parseLong(f[12]) / 100.0;
        } catch (IOException | RuntimeException gone) {
          // the thread ended meanwhile
        }
      }
    } catch (IOException | RuntimeException e) {
      return java.util.Map.of();
    }
    return byName;
  }

  /** The kernel's readahead for this mount ({@code /sys/class/bdi/DEV/read_ahead_kb}), or -1. */
  int readAheadKb() {
    try {
      Optional<MountTable.MountInfo> m = MountTable.find(mountPoint);
      if (m.isEmpty()) {
        return -1;
      }
      return Integer.parseInt(Files.readString(Path.of("/sys/class/bdi", m.get().device(), "read_ahead_kb")).trim());
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /** The mount's type and options as {@code /proc/mounts} lists them, or "". */
  String mountOptions() {
    try {
      String want = mountPoint.toAbsolutePath().normalize().toString();
      for (String line : Files.readAllLines(Path.of("/proc/mounts"))) {
        String[] f = line.split(" ");
        if (f.length >= 4 && f[1].equals(want)) {
          return f[2] + " " + f[3];
        }
      }
    } catch (IOException e) {
      // fall through
    }
    return "";
  }

  String logTail() {
    try {
      List<String> lines = Files.readAllLines(logFile);
      return String.join(" | ", lines.subList(Math.max(0, lines.size() - 8), lines.size()));
    } catch (IOException | RuntimeException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  /** Stops the command with SIGTERM, waits up to 30 s, then makes sure nothing stays mounted or running. */
  @Override
  public void close() throws IOException {
    IOException failure = null;
    try {
      process.destroy();
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        failure = new IOException(name + " did not stop within 30 s of SIGTERM");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      failure = new IOException("interrupted while stopping " + name, e);
    } finally {
      try {
        clear(mountPoint);
      } catch (IOException e) {
        if (failure == null) {
          failure = e;
        }
      }
      if (process.isAlive()) {
        process.destroyForcibly();
      }
    }
    if (failure != null) {
      throw failure;
    }
  }
}
