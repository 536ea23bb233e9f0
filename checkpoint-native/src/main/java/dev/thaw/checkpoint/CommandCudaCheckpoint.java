package dev.thaw.checkpoint;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * {@link CudaCheckpoint} through NVIDIA's {@code cuda-checkpoint} command, for drivers whose libcuda lacks the API:
 * {@code cuda-checkpoint --action lock|checkpoint|restore|unlock --pid PID [--timeout MS]} and
 * {@code --get-state --pid PID}. It cannot remap GPUs on restore; that needs the driver's API (570 or later).
 */
final class CommandCudaCheckpoint implements CudaCheckpoint {
  private final Path binary;

  CommandCudaCheckpoint(Path binary) {
    this.binary = binary;
  }

  static Optional<CudaCheckpoint> find() {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
      Path p = Path.of(dir.isEmpty() ? "." : dir, "cuda-checkpoint");
      if (Files.isExecutable(p)) {
        return Optional.of(new CommandCudaCheckpoint(p));
      }
    }
    return Optional.empty();
  }

  /** The command line for one action; {@code timeout} only for lock. */
  List<String> command(String action, long pid, Duration timeout) {
    List<String> c = new ArrayList<>(List.of(binary.toString(), "--action", action, "--pid", Long.toString(pid)));
    if (timeout != null && !timeout.isZero()) {
      c.addAll(List.of("--timeout", Long.toString(timeout.toMillis())));
    }
    return c;
  }

  @Override
  public void lock(long pid, Duration timeout) throws IOException {
    run(command("lock", pid, timeout));
  }

  @Override
  public void checkpoint(long pid) throws IOException {
    run(command("checkpoint", pid, null));
  }

  @Override
  public void restore(long pid, List<GpuPair> pairs) throws IOException {
    if (!pairs.isEmpty()) {
      throw new IOException("cuda-checkpoint cannot remap GPUs on restore; that needs libcuda's checkpoint API"
          + " (driver 570 or later)");
    }
    run(command("restore", pid, null));
  }

  @Override
  public void unlock(long pid) throws IOException {
    run(command("unlock", pid, null));
  }

  @Override
  public State state(long pid) throws IOException {
    return parseState(run(List.of(binary.toString(), "--get-state", "--pid", Long.toString(pid))));
  }

  @Override
  public long restoreThreadId(long pid) throws IOException {
    return parseThreadId(run(List.of(binary.toString(), "--get-restore-tid", "--pid", Long.toString(pid))));
  }

  static long parseThreadId(String output) throws IOException {
    try {
      return Long.parseLong(output.strip());
    } catch (NumberFormatException e) {
      throw new IOException("cuda-checkpoint --get-restore-tid printed '" + output.strip() + "', not a thread id", e);
    }
  }

  static State parseState(String output) throws IOException {
    String s = output.strip().toUpperCase(Locale.ROOT);
    for (State st : State.values()) {
      if (s.equals(st.name())) {
        return st;
      }
    }
    throw new IOException("cuda-checkpoint --get-state printed '" + output.strip() + "', not a process state");
  }

  @Override
  public String describe() {
    return "cuda-checkpoint at " + binary;
  }

  private static String run(List<String> cmd) throws IOException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    try {
      if (!p.waitFor(10, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new IOException(String.join(" ", cmd) + " did not finish within 10 minutes");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted: " + String.join(" ", cmd), e);
    }
    if (p.exitValue() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): " + out.strip());
    }
    return out;
  }
}
