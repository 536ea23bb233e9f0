package dev.thaw.cli;

import dev.thaw.checkpoint.PidNamespaceProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "run", mixinStandardHelpOptions = true,
    description = {
      "Run a server so that it can be checkpointed and restored on any node.",
      "The server runs as the first process (PID 1) of a new PID namespace, in a session of its own, stdin from "
          + "/dev/null and stdout, stderr appended to files (under the state directory unless --stdout and --stderr "
          + "say where; it says where as it starts). Runs in the foreground until the server exits and exits with its "
          + "status (0, with a note, when it was checkpointed); Ctrl-C or SIGTERM is passed on to the server (then it "
          + "is killed after --grace). Needs root (or CAP_SYS_ADMIN) and util-linux's unshare.",
      "Example: thaw run --stdout server.out --stderr server.err -- java -XX:-UsePerfData -jar server.jar"
    })
final class RunCommand implements Callable<Integer> {
  @Option(names = "--stdout", paramLabel = "FILE",
      description = "The server's stdout, appended. Default: $XDG_STATE_HOME (~/.local/state)/thaw/run/CMD-TIME.out.")
  Path stdout;

  @Option(names = "--stderr", paramLabel = "FILE",
      description = "The server's stderr, appended. Default: $XDG_STATE_HOME (~/.local/state)/thaw/run/CMD-TIME.err.")
  Path stderr;

  @Option(names = "--grace", paramLabel = "DURATION", defaultValue = "30s", converter = Units.DurationConverter.class,
      description = "How long a stopping server gets after SIGTERM before it is killed. Default: ${DEFAULT-VALUE}.")
  java.time.Duration grace;

  @Option(names = "--json", description = "Once started, print one JSON object (pid, stdout, stderr) on stdout.")
  boolean json;

  @Parameters(paramLabel = "CMD", arity = "1..*", description = "The server's command and its arguments (after --).")
  List<String> command;

  @Override
  public Integer call() throws Exception {
    if (stdout == null || stderr == null) {
      String state = System.getenv("XDG_STATE_HOME");
      Path dir = (state != null && !state.isBlank() ? Path.of(state)
          : Path.of(System.getProperty("user.home"), ".local", "state")).resolve("thaw").resolve("run");
      String base = Path.of(command.getFirst()).getFileName().toString().replaceAll("[^A-Za-z0-9._-]+", "_") + "-"
          + java.time.LocalDateTime.now().format(java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
      stdout = stdout != null ? stdout : dir.resolve(base + ".out");
      stderr = stderr != null ? stderr : dir.resolve(base + ".err");
    }
    // marks have file-system time, which may trail the clock by a tick: a second's margin, far below PID reuse
    java.time.Instant started = java.time.Instant.now().minusSeconds(1);
    PidNamespaceProcess p = PidNamespaceProcess.start(command, stdout, stderr);
    Thread hook = new Thread(() -> {
      try {
        p.stop(grace.toMillis());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "thaw-run-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    String out = stdout.toAbsolutePath().toString();
    String err = stderr.toAbsolutePath().toString();
    System.err.printf("thaw run: %s is PID %d here, PID 1 in its namespace; stdout %s, stderr %s%n", command.getFirst(),
        p.pid(), out, err);
    if (json) {
      var o = JsonOut.object();
      o.put("pid", p.pid());
      o.put("stdout", out);
      o.put("stderr", err);
      JsonOut.print(System.out, o);
    }
    int status = p.waitFor();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook is stopping the server
    }
    var checkpointed = dev.thaw.checkpoint.SnapshotService.checkpointedAs(p.pid(), started);
    if (checkpointed.isPresent()) {
      System.err.printf("thaw run: %s was checkpointed as %s and stopped by the dump; thaw restore %s brings it"
          + " back%n", command.getFirst(), checkpointed.get(), checkpointed.get());
      return 0;
    }
    if (Files.exists(stderr) && status != 0) {
      System.err.printf("thaw run: %s exited with status %d (its stderr: %s)%n", command.getFirst(), status, err);
    }
    return status;
  }
}
