package dev.thaw.fuse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** What the kernel says is mounted ({@code /proc/self/mountinfo}), and {@code fusermount3} to unmount. */
public final class MountTable {
  /** How long a FUSE mount's daemon may take to answer one getattr before it is taken for stopped or hung. */
  static final Duration PROBE_TIMEOUT = Duration.ofSeconds(5);

  private MountTable() {}

  /** What is at a mount point, as far as a FUSE daemon's answer tells. */
  enum Health {
    /** No FUSE mount there. */
    NONE,
    /** A FUSE mount whose daemon answers. */
    LIVE,
    /** A FUSE mount whose daemon is gone (the kernel says "not connected"). */
    STALE,
    /** A FUSE mount whose daemon does not answer: stopped (SIGSTOP, a debugger) or hung. */
    UNRESPONSIVE
  }

  /**
   * One mountinfo line.
   *
   * @param device "major:minor", the key of the mount's backing device info in {@code /sys/class/bdi}
   */
  public record MountInfo(Path mountPoint, String device, String fsType, String source) {
    public boolean isFuse() {
      return fsType.equals("fuse") || fsType.startsWith("fuse.");
    }
  }

  /** The mount at exactly {@code mountPoint}, the last one when several are stacked. */
  public static Optional<MountInfo> find(Path mountPoint) throws IOException {
    Path want = mountPoint.toAbsolutePath().normalize();
    MountInfo found = null;
    for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"), StandardCharsets.UTF_8)) {
      String[] f = line.split(" ");
      int dash = List.of(f).indexOf("-");
      if (f.length < 10 || dash < 6) {
        continue;
      }
      Path point = Path.of(unescape(f[4]));
      if (point.equals(want)) {
        found = new MountInfo(point, f[2], f[dash + 1], unescape(f[dash + 2]));
      }
    }
    return Optional.ofNullable(found);
  }

  private static String unescape(String s) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 3 < s.length()) {
        out.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        out.append(c);
      }
    }
    return out.toString();
  }

  /** True when a FUSE mount is listed at {@code mountPoint} but its daemon is gone. */
  public static boolean isStale(Path mountPoint) throws IOException {
    return probe(mountPoint, PROBE_TIMEOUT) == Health.STALE;
  }

  /**
   * Asks the FUSE mount at {@code mountPoint}, if there is one, for its file system's statistics (statfs, which the
   * kernel always asks the daemon for, unlike attributes it may have cached), waiting at most {@code timeout}: a
   * stopped daemon never answers, and a caller asking it directly would wait forever. The question is asked on a
   * daemon thread left behind when unanswered; it ends when the daemon resumes or the mount goes.
   */
  static Health probe(Path mountPoint, Duration timeout) throws IOException {
    Optional<MountInfo> m = find(mountPoint);
    if (m.isEmpty() || !m.get().isFuse()) {
      return Health.NONE;
    }
    CompletableFuture<Health> answer = new CompletableFuture<>();
    Thread.ofPlatform().daemon().name("thaw-mount-probe").start(() -> {
      try {
        Files.getFileStore(mountPoint).getTotalSpace();
        answer.complete(Health.LIVE);
      } catch (FileSystemException e) {
        String reason = e.getReason() + " " + e.getMessage();
        answer.complete(reason.contains("not connected") ? Health.STALE : Health.LIVE);
      } catch (IOException | RuntimeException e) {
        answer.complete(Health.LIVE); // it answered, with an error: a daemon is there
      }
    });
    try {
      return answer.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      return Health.UNRESPONSIVE;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted while probing the mount at " + mountPoint);
    } catch (ExecutionException e) {
      throw new IOException("cannot probe the mount at " + mountPoint + ": " + e.getCause(), e.getCause());
    }
  }

  /**
   * Aborts the FUSE connection of the mount at {@code mountPoint} through the kernel's fusectl file system (mounted at
   * {@code /sys/fs/fuse/connections} first when it is not): every request waiting on it fails at once. A daemon killed
   * while one of its own threads waited on its mount cannot finish dying (the thread waits for a reply only the daemon
   * could send); aborting frees it. Needs root.
   *
   * @return whether the connection was found and aborted
   */
  public static boolean abort(Path mountPoint) throws IOException {
    Optional<MountInfo> m = find(mountPoint);
    if (m.isEmpty() || !m.get().isFuse()) {
      return false;
    }
    String minor = m.get().device().substring(m.get().device().indexOf(':') + 1);
    Path connections = Path.of("/sys/fs/fuse/connections");
    Path abort = connections.resolve(minor).resolve("abort");
    if (!Files.exists(abort) && Files.isDirectory(connections)) {
      try {
        Process p = new ProcessBuilder("mount", "-t", "fusectl", "none", connections.toString())
            .redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        p.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted while mounting fusectl");
      }
    }
    if (!Files.exists(abort)) {
      return false;
    }
    Files.writeString(abort, "1");
    return true;
  }

  /**
   * Unmounts with {@code fusermount3 -u}; {@code lazy} detaches at once even while files are open (they keep
   * working until closed).
   */
  public static void unmount(Path mountPoint, boolean lazy) throws IOException {
    List<String> cmd = lazy
        ? List.of("fusermount3", "-u", "-z", mountPoint.toString())
        : List.of("fusermount3", "-u", mountPoint.toString());
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    try {
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("fusermount3 did not finish unmounting " + mountPoint + " within 30 s");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted while unmounting " + mountPoint);
    }
    if (p.exitValue() != 0) {
      throw new IOException("cannot unmount " + mountPoint + ": " + (out.isEmpty() ? "fusermount3 exit " + p.exitValue() : out));
    }
  }
}
