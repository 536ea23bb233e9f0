package dev.thaw.cli;

import dev.thaw.checkpoint.ExternalMounts;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.fuse.MountTable;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * For a restore whose server read its model through a Thaw mount that this node does not have: starts
 * {@code thaw mount DIGEST PATH} as a process of its own (its own session, so it outlives {@code thaw restore} and a
 * Ctrl-C to it), waits until the mount is there, and says where its log is. The same manifest as at the checkpoint
 * (its digest, whatever the tag names now) at the same path: the restored server's files and mappings open again,
 * and its weights stream lazily.
 */
final class DetachedMount implements SnapshotService.MountProvider {
  private static final long READY_MS = 120_000;

  private final String origin;
  private final Path cache;
  private final Path logDir;

  /** Mounts from {@code origin} through {@code cache} (null: thaw mount's default), its log under {@code logDir}. */
  DetachedMount(String origin, Path cache, Path logDir) {
    this.origin = origin;
    this.cache = cache;
    this.logDir = logDir;
  }

  @Override
  public void mount(ExternalMounts.ExternalMount m) throws IOException {
    String what = m.thawDigest() != null ? m.thawDigest() : m.thawSource();
    Path mnt = Path.of(m.path());
    var there = MountTable.find(mnt);
    if (there.isPresent()) {
      throw new IOException(mnt + " holds another mount (" + there.get() + "), while the snapshot's server read " + what
          + " there: unmount it, then restore again");
    }
    Files.createDirectories(mnt);
    Files.createDirectories(logDir);
    Path log = logDir.resolve("mount" + mnt.toString().replaceAll("[^A-Za-z0-9._-]+", "_") + ".log");
    List<String> cmd = new ArrayList<>(List.of("setsid", ProcessHandle.current().info().command().orElse("java")));
    for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!arg.startsWith("-javaagent") && !arg.startsWith("-agentlib") && !arg.startsWith("-XX:AOTCacheOutput")) {
        cmd.add(arg);
      }
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "mount", what,
        mnt.toString(), "--origin", origin));
    if (cache != null) {
      cmd.addAll(List.of("--cache", cache.toAbsolutePath().toString()));
    }
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(
        log.toFile())).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READY_MS);
    while (ExternalMounts.missing(m)) {
      if (!p.isAlive()) {
        throw new IOException("thaw mount " + what + " " + mnt + " exited with " + p.exitValue() + " before mounting: "
            + tail(log));
      }
      if (System.nanoTime() > deadline) {
        p.destroy();
        throw new IOException("thaw mount " + what + " " + mnt + " did not mount within " + READY_MS / 1000 + " s: "
            + tail(log));
      }
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while mounting " + what, e);
      }
    }
    System.err.println("restore: mounted " + what + " at " + mnt + " for the restored server (thaw mount, process "
        + p.pid() + ", log " + log + "; thaw unmount " + mnt + " ends it)");
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      return String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
    } catch (IOException e) {
      return "(no log at " + log + ")";
    }
  }
}
