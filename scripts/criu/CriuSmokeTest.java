import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * CRIU smoke test (scripts/criu/smoke-test.sh runs it): a server holding a listening TCP socket and an established
 * connection, whose client (this harness) is not dumped, is dumped with --tcp-established, restored, and must then
 * answer on the old connection and on a new one with its counter intact.
 *
 * <p>It is dumped the way Thaw dumps a server and the CRIU tests do (checkpoint-native's CriuTest): a JVM that is
 * the first process of its own PID namespace and leads its own session, so its PID cannot collide with the node's
 * on restore and no --shell-job is needed.
 *
 * <p>Usage: {@code java -cp CLASSES CriuSmokeTest CRIU WORK} (the harness) or {@code ... serve PORT_FILE} (the
 * server it starts).
 */
public final class CriuSmokeTest {
  private static final List<String> SERVER_FLAGS = List.of("--tcp-established", "--ext-unix-sk", "--file-locks");

  public static void main(String[] args) throws Exception {
    if (args.length == 2 && args[0].equals("serve")) {
      serve(Path.of(args[1]));
    } else if (args.length == 2) {
      System.exit(harness(Path.of(args[0]), Path.of(args[1])));
    } else {
      System.err.println("usage: CriuSmokeTest CRIU WORK | serve PORT_FILE");
      System.exit(2);
    }
  }

  /** Answers each line with "pong LINE N", N counting the lines answered so far: state that must survive. */
  private static void serve(Path portFile) throws IOException {
    AtomicLong answered = new AtomicLong();
    ServerSocket listener = new ServerSocket();
    listener.bind(new InetSocketAddress("127.0.0.1", 0));
    Path tmp = portFile.resolveSibling(portFile.getFileName() + ".tmp");
    Files.writeString(tmp, Integer.toString(listener.getLocalPort()));
    Files.move(tmp, portFile, StandardCopyOption.ATOMIC_MOVE);
    while (true) {
      Socket conn = listener.accept();
      Thread.ofPlatform().daemon().start(() -> {
        try (conn; var in = new BufferedReader(new InputStreamReader(conn.getInputStream(), StandardCharsets.UTF_8));
             var out = new PrintWriter(conn.getOutputStream(), true, StandardCharsets.UTF_8)) {
          for (String line; (line = in.readLine()) != null; ) {
            out.print("pong " + line + " " + answered.incrementAndGet() + "\n");
            out.flush();
          }
        } catch (IOException e) {
          // the client went away
        }
      });
    }
  }

  private static int harness(Path criu, Path work) throws Exception {
    Path images = Files.createDirectories(work.resolve("images"));
    Path portFile = work.resolve("port");
    Path serverLog = work.resolve("server.log");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    // -XX:-UsePerfData: no /tmp/hsperfdata file for PID 1 of a namespace to collide on
    // Its files are opened inside its namespaces (by the shell it execs from): CRIU finds their mounts there.
    ProcessBuilder pb = new ProcessBuilder("unshare", "--pid", "--fork", "--mount-proc", "--", "setsid", "sh", "-c",
        "exec \"$@\" </dev/null >>\"$SMOKE_LOG\" 2>&1", "sh",
        java, "-XX:-UsePerfData", "-Xmx64m", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
        CriuSmokeTest.class.getName(), "serve", portFile.toString())
        .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
        .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(serverLog.toFile()));
    pb.environment().put("SMOKE_LOG", serverLog.toString());
    Process unshare = pb.start();
    long pid = -1;
    long restored = -1;
    try {
      pid = firstChild(unshare);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!Files.exists(portFile)) {
        if (!unshare.isAlive() || System.nanoTime() > deadline) {
          return fail("the test server did not start; its output: " + tail(serverLog));
        }
        Thread.sleep(20);
      }
      int port = Integer.parseInt(Files.readString(portFile).strip());
      try (Socket conn = new Socket("127.0.0.1", port)) {
        conn.setSoTimeout(10_000);
        var in = new BufferedReader(new InputStreamReader(conn.getInputStream(), StandardCharsets.UTF_8));
        if (!exchange(conn, in, "one", "pong one 1")) {
          return 1;
        }
        List<String> dump = new ArrayList<>(List.of(criu.toString(), "dump", "-t", Long.toString(pid), "-D",
            images.toString(), "-o", "dump.log", "-v4"));
        dump.addAll(SERVER_FLAGS);
        double dumpS = criu(dump, images.resolve("dump.log"));
        if (dumpS < 0) {
          return 1;
        }
        unshare.waitFor(10, TimeUnit.SECONDS); // the dump killed its only child
        if (!awaitGone(pid, 10_000)) {
          return fail("PID " + pid + " still there 10 s after the dump");
        }
        Path pidFile = work.resolve("restored.pid");
        List<String> restore = new ArrayList<>(List.of(criu.toString(), "restore", "-D", images.toString(), "-o",
            "restore.log", "-v4", "-d", "--root", "/", "--pidfile", pidFile.toString()));
        restore.addAll(SERVER_FLAGS);
        double restoreS = criu(restore, images.resolve("restore.log"));
        if (restoreS < 0) {
          return 1;
        }
        restored = Long.parseLong(Files.readString(pidFile).strip());
        if (!exchange(conn, in, "two", "pong two 2")) { // the established connection survived
          return 1;
        }
        try (Socket fresh = new Socket("127.0.0.1", port)) { // so did the listener
          fresh.setSoTimeout(10_000);
          if (!exchange(fresh, new BufferedReader(new InputStreamReader(fresh.getInputStream(), StandardCharsets.UTF_8)),
              "three", "pong three 3")) {
            return 1;
          }
        }
        System.out.printf("smoke-test: OK: %s dumped a server (PID %d, its own PID namespace) with a listening and an"
            + " established TCP socket in %.2f s and restored it in %.2f s; it answers on both%n",
            criu, pid, dumpS, restoreS);
        return 0;
      }
    } finally {
      for (long p : new long[] {pid, restored}) { // killing a namespace's first process ends the namespace
        if (p > 0) {
          ProcessHandle.of(p).ifPresent(ProcessHandle::destroyForcibly);
          awaitGone(p, 10_000);
        }
      }
      unshare.destroyForcibly();
    }
  }

  /**
   * The PID of unshare's child: the server, PID 1 of its namespace. As checkpoint-native's PidNamespaceProcess finds
   * it; this file runs before anything is built, so it has none of the project's classes.
   */
  private static long firstChild(Process unshare) throws IOException, InterruptedException {
    Path children = Path.of("/proc", Long.toString(unshare.pid()), "task", Long.toString(unshare.pid()), "children");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (System.nanoTime() < deadline) {
      String c = "";
      try {
        c = Files.readString(children).strip();
      } catch (IOException e) {
        // unshare has exited
      }
      if (!c.isEmpty()) {
        return Long.parseLong(c.split(" ")[0]);
      }
      if (!unshare.isAlive()) {
        throw new IOException("unshare --pid exited with " + unshare.exitValue() + " (it needs root)");
      }
      Thread.sleep(1);
    }
    throw new IOException("no process appeared in the new PID namespace within 10 s");
  }

  /** Runs CRIU; its duration in seconds, or -1 after printing why it failed with the error lines of its log. */
  private static double criu(List<String> cmd, Path log) throws Exception {
    long start = System.nanoTime();
    Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
        .redirectErrorStream(true).start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      fail("criu " + cmd.get(1) + " did not finish in 60 s");
      return -1;
    }
    if (p.exitValue() != 0) {
      System.out.print(output);
      if (Files.exists(log)) {
        List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
        List<String> errors = lines.stream().filter(l -> l.contains("Error")).toList();
        (errors.isEmpty() ? lines.subList(Math.max(0, lines.size() - 20), lines.size())
            : errors.subList(Math.max(0, errors.size() - 20), errors.size())).forEach(System.out::println);
      }
      fail("criu " + cmd.get(1) + " exited with " + p.exitValue() + "; log: " + log);
      return -1;
    }
    return (System.nanoTime() - start) / 1e9;
  }

  private static boolean exchange(Socket sock, BufferedReader in, String text, String want) throws IOException {
    sock.getOutputStream().write((text + "\n").getBytes(StandardCharsets.UTF_8));
    String got = in.readLine();
    if (!want.equals(got)) {
      fail("sent '" + text + "', expected '" + want + "', got '" + got + "'");
      return false;
    }
    return true;
  }

  /** Whether PID is gone within the time: no such process, or a zombie (exited, its PID held until reaped). */
  private static boolean awaitGone(long pid, long ms) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
    while (System.nanoTime() < deadline) {
      try {
        String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        if (stat.substring(stat.lastIndexOf(')') + 2).startsWith("Z")) {
          return true;
        }
      } catch (IOException e) {
        return true;
      }
      Thread.sleep(20);
    }
    return false;
  }

  private static String tail(Path file) {
    try {
      List<String> lines = Files.readAllLines(file, StandardCharsets.ISO_8859_1);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
    } catch (IOException e) {
      return "(none: " + e.getMessage() + ")";
    }
  }

  private static int fail(String message) {
    System.out.println("smoke-test: FAILED: " + message);
    return 1;
  }
}
