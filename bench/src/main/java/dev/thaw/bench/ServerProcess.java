package dev.thaw.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The example inference server ({@code ort-server}) run as a child process. Its log lines are read as they come,
 * copied to a log file, and the first line matching each milestone is stamped with {@link System#nanoTime()} on
 * arrival, so the demo knows when the model was loaded and when the server became ready without polling it.
 */
final class ServerProcess implements AutoCloseable {
  /** Milestones in the server's log (its stable log format, see examples/ort-server/README.md). */
  enum Milestone {
    HTTP_STARTED("^ort-server: started HTTPService at (\\S+):(\\d+)"),
    MODEL_LOADED("^ort-server: model '[^']+' version \\S+ loaded in"),
    READY("^ort-server: ready in"),
    LOAD_FAILED("^ort-server: failed to load model");

    final Pattern pattern;

    Milestone(String regex) {
      this.pattern = Pattern.compile(regex);
    }
  }

  private record Seen(long nanos, String line) {}

  private final Process process;
  private final long execNanos;
  private final Map<Milestone, Seen> seen = new ConcurrentHashMap<>();
  private final Deque<String> tail = new ArrayDeque<>();
  private final Thread reader;

  private ServerProcess(Process process, long execNanos, Path logFile) throws IOException {
    this.process = process;
    this.execNanos = execNanos;
    Writer log = Files.newBufferedWriter(logFile, StandardCharsets.UTF_8);
    this.reader = Thread.ofPlatform().daemon().name("ort-server-log").start(() -> read(log));
  }

  /** Execs {@code cmd} (the server and its flags), its stdout and stderr merged into {@code logFile}. */
  static ServerProcess start(List<String> cmd, Path logFile) throws IOException {
    Files.createDirectories(logFile.getParent());
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    long t0 = System.nanoTime();
    Process p = pb.start();
    return new ServerProcess(p, t0, logFile);
  }

  long pid() {
    return process.pid();
  }

  long execNanos() {
    return execNanos;
  }

  private void read(Writer log) {
    try (log; BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        long now = System.nanoTime();
        for (Milestone m : Milestone.values()) {
          if (!seen.containsKey(m) && m.pattern.matcher(line).find()) {
            seen.put(m, new Seen(now, line));
          }
        }
        synchronized (tail) {
          tail.addLast(line);
          if (tail.size() > 12) {
            tail.removeFirst();
          }
          tail.notifyAll();
        }
        log.write(line);
        log.write('\n');
        log.flush();
      }
    } catch (IOException e) {
      // the process ended; what it printed is in the log
    } finally {
      synchronized (tail) {
        tail.notifyAll();
      }
    }
  }

  /**
   * Waits for a milestone.
   *
   * @return {@link System#nanoTime()} when its line arrived
   * @throws IOException when the server reports a failed load, exits first, or {@code timeoutMs} passes
   */
  long await(Milestone m, long timeoutMs) throws IOException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    synchronized (tail) {
      while (true) {
        Seen s = seen.get(m);
        if (s != null) {
          return s.nanos();
        }
        if (seen.containsKey(Milestone.LOAD_FAILED)) {
          throw new IOException("ort-server: " + seen.get(Milestone.LOAD_FAILED).line() + " | " + logTail());
        }
        if (!process.isAlive() && !reader.isAlive()) {
          throw new IOException("ort-server exited with " + process.exitValue() + " before '" + m + "': " + logTail());
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new IOException("ort-server: no '" + m + "' within " + timeoutMs + " ms: " + logTail());
        }
        try {
          tail.wait(Math.max(1, Math.min(100, TimeUnit.NANOSECONDS.toMillis(left))));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while waiting for ort-server", e);
        }
      }
    }
  }

  /** The HTTP port the server reported (it is started with port 0). */
  int httpPort(long timeoutMs) throws IOException {
    await(Milestone.HTTP_STARTED, timeoutMs);
    Matcher matcher = Milestone.HTTP_STARTED.pattern.matcher(seen.get(Milestone.HTTP_STARTED).line());
    if (!matcher.find()) {
      throw new IllegalStateException("unreachable: the line matched before");
    }
    return Integer.parseInt(matcher.group(2));
  }

  String logTail() {
    synchronized (tail) {
      return String.join(" | ", tail);
    }
  }

  /** Stops the server with SIGTERM (its clean shutdown), then SIGKILL after 20 s. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
      reader.join(5_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
    }
  }
}
