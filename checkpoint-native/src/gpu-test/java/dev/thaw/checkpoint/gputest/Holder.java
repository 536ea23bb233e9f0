package dev.thaw.checkpoint.gputest;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A holder child process (torch_holder.py or {@link JcudaHolder}) spoken to in lines: commands on its stdin, one
 * answer line on its stdout per command. Its stderr is passed through, prefixed, so its failures show in the log.
 * Every wait has a timeout, and every holder started is killed by {@link #killAll} (the driver's shutdown hook and
 * watchdog call it), so no GPU process outlives the check.
 */
final class Holder implements AutoCloseable {
  /** The first words of the lines that answer a command; anything else a holder prints is passed to the log. */
  private static final List<String> ANSWERS = List.of("READY", "OK", "FAIL", "BUSY", "H2D", "BYE", "ERROR");
  private static final Set<Holder> LIVE = ConcurrentHashMap.newKeySet();
  private static final String EOF = "\u0000EOF";

  final String name;
  private final Process process;
  private final OutputStream stdin;
  private final BlockingQueue<String> answers = new LinkedBlockingQueue<>();

  private Holder(String name, Process process) {
    this.name = name;
    this.process = process;
    this.stdin = process.getOutputStream();
    Thread.ofPlatform().daemon().name(name + "-stdout").start(() -> pump(true));
    Thread.ofPlatform().daemon().name(name + "-stderr").start(() -> pump(false));
  }

  /**
   * Starts {@code command} with {@code env} added to this process's environment; its pid is appended to
   * {@code pidFile} (when not null) so that run.sh can kill it should this JVM itself be killed.
   */
  static Holder start(String name, List<String> command, Map<String, String> env, Path pidFile) throws IOException {
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().putAll(env);
    Process p = pb.start();
    Holder h = new Holder(name, p);
    LIVE.add(h);
    if (pidFile != null) {
      Files.writeString(pidFile, p.pid() + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }
    GpuCheck.log(name + ": started pid " + p.pid() + ": " + String.join(" ", command));
    return h;
  }

  long pid() {
    return process.pid();
  }

  boolean isAlive() {
    return process.isAlive();
  }

  private void pump(boolean isStdout) {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(
        isStdout ? process.getInputStream() : process.getErrorStream(), StandardCharsets.UTF_8))) {
      for (String line; (line = r.readLine()) != null; ) {
        String first = line.split(" ", 2)[0];
        if (isStdout && ANSWERS.contains(first)) {
          answers.add(line);
        } else {
          GpuCheck.log("  [" + name + (isStdout ? "] " : " stderr] ") + line);
        }
      }
    } catch (IOException e) {
      // the process is gone; the EOF marker below says so to a waiter
    }
    if (isStdout) {
      answers.add(EOF);
    }
  }

  /** Sends one command line. */
  void send(String command) throws IOException {
    try {
      stdin.write((command + "\n").getBytes(StandardCharsets.UTF_8));
      stdin.flush();
    } catch (IOException e) {
      throw new IOException(name + " (pid " + pid() + ") did not take '" + command + "': " + e.getMessage()
          + exitNote(), e);
    }
  }

  /** Waits for the next answer line; fails on ERROR, on the process's exit, and after {@code timeout}. */
  String await(String what, Duration timeout) throws IOException {
    String line;
    try {
      line = answers.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while waiting for " + name + "'s " + what, e);
    }
    if (line == null) {
      throw new IOException(name + " (pid " + pid() + ") gave no " + what + " within " + timeout.toSeconds() + " s");
    }
    if (line.equals(EOF)) {
      answers.add(EOF); // later waiters see it too
      throw new IOException(name + " (pid " + pid() + ") closed its output before its " + what + exitNote());
    }
    if (line.startsWith("ERROR")) {
      throw new IOException(name + " (pid " + pid() + ") answered: " + line);
    }
    return line;
  }

  /** Sends {@code command} and returns its answer. */
  String ask(String command, Duration timeout) throws IOException {
    send(command);
    return await("answer to '" + command + "'", timeout);
  }

  private String exitNote() {
    try {
      if (process.waitFor(2, TimeUnit.SECONDS)) {
        return " (it exited with " + process.exitValue() + ")";
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return "";
  }

  /** Asks the holder to quit, then kills it (and anything it started) if it has not within a few seconds. */
  @Override
  public void close() {
    if (process.isAlive()) {
      try {
        send("quit");
        process.waitFor(5, TimeUnit.SECONDS);
      } catch (IOException e) {
        // already closing; killed below
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    kill();
  }

  /** Kills the holder and its descendants at once, and waits up to 10 s for it to be gone. */
  void kill() {
    process.descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
    try {
      process.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    LIVE.remove(this);
  }

  /** Kills every holder still running: for failures, the watchdog and the shutdown hook. */
  static void killAll() {
    for (Holder h : List.copyOf(LIVE)) {
      h.kill();
    }
  }
}
