package dev.thaw.checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A command run as the first process (PID 1) of a new PID namespace, in a session of its own, its stdio on files: the
 * shape CRIU can dump and restore on any node, since the restored tree gets a new namespace of its own and its PIDs
 * cannot collide with the node's. Started through util-linux's {@code unshare --pid --fork --mount-proc}; the command
 * is then {@code setsid}'s and the shell's successor by exec, so nothing of ours stays in the tree.
 */
public final class PidNamespaceProcess implements AutoCloseable {
  private final Process unshare;
  private final long pid;

  private PidNamespaceProcess(Process unshare, long pid) {
    this.unshare = unshare;
    this.pid = pid;
  }

  /**
   * Starts {@code command} with stdin from {@code /dev/null} and stdout, stderr appended to {@code stdout},
   * {@code stderr}.
   *
   * @throws IOException when {@code unshare} is missing or not allowed (it needs root or CAP_SYS_ADMIN), or the
   *     namespace's first process does not appear within 10 s
   */
  public static PidNamespaceProcess start(List<String> command, Path stdout, Path stderr) throws IOException {
    if (command.isEmpty()) {
      throw new IllegalArgumentException("no command to run");
    }
    Files.createDirectories(stdout.toAbsolutePath().getParent());
    Files.createDirectories(stderr.toAbsolutePath().getParent());
    List<String> cmd = new ArrayList<>(List.of("unshare", "--pid", "--fork", "--mount-proc", "--", "setsid", "sh", "-c",
        "exec \"$@\" </dev/null >>\"$THAW_STDOUT\" 2>>\"$THAW_STDERR\"", "sh"));
    cmd.addAll(command);
    ProcessBuilder pb = new ProcessBuilder(cmd)
        .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
        .redirectOutput(ProcessBuilder.Redirect.appendTo(stderr.toFile()))
        .redirectError(ProcessBuilder.Redirect.appendTo(stderr.toFile()));
    pb.environment().put("THAW_STDOUT", stdout.toAbsolutePath().toString());
    pb.environment().put("THAW_STDERR", stderr.toAbsolutePath().toString());
    Process p;
    try {
      p = pb.start();
    } catch (IOException e) {
      throw new IOException("cannot start unshare (util-linux) for a new PID namespace: " + e.getMessage(), e);
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    Path children = Path.of("/proc", Long.toString(p.pid()), "task", Long.toString(p.pid()), "children");
    while (System.nanoTime() < deadline) {
      String c = "";
      try {
        c = Files.readString(children).strip();
      } catch (IOException e) {
        // unshare has exited; reported below
      }
      if (!c.isEmpty()) {
        return new PidNamespaceProcess(p, Long.parseLong(c.split(" ")[0]));
      }
      if (!p.isAlive()) {
        throw new IOException("unshare --pid exited with " + p.exitValue() + " before starting " + command.getFirst()
            + " (it needs root or CAP_SYS_ADMIN); see " + stderr);
      }
      LockSupport.parkNanos(1_000_000);
    }
    p.destroyForcibly();
    throw new IOException("no process appeared in the new PID namespace within 10 s for " + command.getFirst());
  }

  /** The command's PID as this host sees it (inside its namespace it is 1): what CRIU dumps. */
  public long pid() {
    return pid;
  }

  public boolean isAlive() {
    return Files.exists(Path.of("/proc", Long.toString(pid)));
  }

  /**
   * Waits until the command exits; {@code unshare} returns its exit status (128 + the signal when one killed it).
   */
  public int waitFor() throws InterruptedException {
    return unshare.waitFor();
  }

  /**
   * Asks the command to stop with SIGTERM, waits up to {@code graceMs}, then kills the namespace.
   *
   * @return the exit status, or -1 when it had to be killed
   */
  public int stop(long graceMs) throws InterruptedException {
    // SIGTERM reaches a namespace's first process only when it handles it (a JVM does; a bare shell does not)
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
    if (unshare.waitFor(graceMs, TimeUnit.MILLISECONDS)) {
      return unshare.exitValue();
    }
    close();
    return -1;
  }

  /** Kills the namespace (its first process taking every other with it) and waits for it to be gone. */
  @Override
  public void close() {
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    unshare.destroyForcibly();
    try {
      unshare.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    awaitGone(pid, 10_000);
  }

  /** Whether a process {@code pid} exists and has not exited (a zombie whose parent does not reap it has). */
  public static boolean exists(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
      int close = stat.lastIndexOf(')');
      return close < 0 || close + 2 >= stat.length() || stat.charAt(close + 2) != 'Z';
    } catch (IOException gone) {
      return false;
    }
  }

  /** Waits until no process has {@code pid} (a restore needs the dumped PIDs free); false on timeout. */
  public static boolean awaitGone(long pid, long timeoutMs) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    while (exists(pid)) {
      if (System.nanoTime() > deadline) {
        return false;
      }
      LockSupport.parkNanos(1_000_000);
    }
    return true;
  }
}
