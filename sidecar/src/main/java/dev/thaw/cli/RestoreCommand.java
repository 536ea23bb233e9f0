package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotService;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "restore", mixinStandardHelpOptions = true,
    description = {
      "Restore a server from its snapshot instead of booting it.",
      "Finds the snapshot NAME whose key matches this node (on this node first, else at the origin, whose images are "
          + "fetched in parallel, checked chunk by chunk against their hashes and decrypted), restores it with CRIU "
          + "into a new PID namespace, restores its CUDA state (remapping GPUs by UUID when they differ) and checks "
          + "it answers its readiness URL and the snapshot's probe as it did when taken. A snapshot from the origin "
          + "must be sealed with the snapshot key and authenticate (its record, its command, each image file): "
          + "anything else is refused before CRIU runs, unless --allow-unsealed for an unsealed one.",
      "On any failure the half-restored tree is killed and the server is booted from CMD after -- (or the command "
          + "line of a snapshot that authenticated) instead, saying why; --no-fallback boots nothing. Needs root.",
      "Example: thaw restore mlp-server --wait"
    })
final class RestoreCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "NAME", description = "The snapshot's name, as given to thaw checkpoint.")
  String name;

  @Parameters(index = "1..*", paramLabel = "CMD", arity = "0..*",
      description = "Booted (after --) when no snapshot can be restored; default: the command line of the snapshot, when"
          + " it was taken on this node or authenticated with the snapshot key.")
  List<String> fallbackCommand;

  @Option(names = "--model", paramLabel = "MODEL",
      description = "Restore only a snapshot of this model (NAME[:TAG] at the origin, or a sha256: digest).")
  String model;

  @Option(names = "--from-origin", description = "Fetch the images from the origin even when this node has them.")
  boolean fromOrigin;

  @Option(names = "--no-fallback", description = "Fail (exit 1) instead of booting the server when restoring fails:"
      + " nothing is started.")
  boolean noFallback;

  @Option(names = "--allow-unsealed", description = "Also restore a snapshot the origin holds unsealed (pushed with"
      + " --no-encrypt): nothing proves who wrote its images and command, so only from an origin you trust.")
  boolean allowUnsealed;

  @Option(names = "--ready-timeout", paramLabel = "DURATION", defaultValue = "5m", converter = Units.DurationConverter.class,
      description = "How long the restored (or booted) server may take to answer. Default: ${DEFAULT-VALUE}.")
  Duration readyTimeout;

  @Option(names = "--log-dir", paramLabel = "DIR",
      description = "Where a booted server's server.out and server.err go, and the log of a model mount the restore"
          + " starts. Default: SNAPSHOTS/.logs/NAME.")
  Path logDir;

  @Option(names = "--mount-cache", paramLabel = "DIR",
      description = "The chunk cache of a model mount the restore starts (when the snapshot's server read its model"
          + " through a Thaw mount this node lacks). Default: thaw mount's.")
  Path mountCache;

  @Option(names = "--pid-file", paramLabel = "FILE",
      description = "Write the server's PID (restored or booted) here, e.g. for a later thaw checkpoint --pid.")
  Path pidFile;

  @Option(names = "--wait", description = "Stay in the foreground until the server exits (for a container's main process).")
  boolean waitForExit;

  @Option(names = "--json", description = "Print one JSON object with the result on stdout.")
  boolean json;

  @Mixin SnapshotOptions snapshots;

  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    long t0 = System.nanoTime();
    if (noFallback && fallbackCommand != null && !fallbackCommand.isEmpty()) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--no-fallback boots nothing,"
          + " yet a command to boot was given after --: drop one of them");
    }
    if (logDir == null) {
      logDir = snapshots.root().resolve(".logs").resolve(name);
    }
    SnapshotService service = snapshots.service().allowUnsealed(allowUnsealed)
        .fallback(SnapshotService.Fallback.givenOrRecorded(fallbackCommand))
        .mounts(new DetachedMount(snapshots.originUri(), mountCache, logDir)).build();
    Progress[] bar = new Progress[1];
    SnapshotService.Restoring done;
    try {
      done = service.restore(new SnapshotService.Restore(name, model, fromOrigin, noFallback, readyTimeout, logDir),
          new SnapshotService.FetchProgress() {
            @Override
            public void started(long totalBytes, String origin) {
              System.err.println("restore: fetching " + Units.bytes(totalBytes) + " of images of " + name + " from "
                  + origin);
              bar[0] = new Progress("fetch", totalBytes, false);
            }

            @Override
            public void wrote(long bytes) {
              bar[0].add(bytes);
            }
          });
    } catch (SnapshotService.NoSnapshot e) {
      throw e.nothingToBoot() ? new IOException(e.getMessage() + ": give one after --", e) : e;
    } finally {
      if (bar[0] != null) {
        bar[0].close();
      }
    }
    SnapshotService.Found found = done.found();
    if (found == null) {
      System.err.println("restore: " + done.restored().fallbackReason() + "; booted the server's command instead");
    } else if (found.fetched()) {
      double s = found.fetchTime().toNanos() / 1e9;
      System.err.printf(Locale.ROOT, "restore: fetched %s from the origin in %.2f s (%.0f MB/s)%n",
          Units.bytes(found.bytesFetched()), s, Units.mbps(found.bytesFetched(), s));
    }
    return finish(done.restored(), found, done.readyUrl(), t0, done.origin());
  }

  private int finish(SnapshotService.Restored r, SnapshotService.Found found, String readyUrl, long t0, String origin)
      throws Exception {
    if (!r.fromSnapshot() && readyUrl != null) {
      try {
        Probe.awaitReady(readyUrl, readyTimeout, r.pid());
      } catch (IOException e) {
        throw new IOException("the snapshot could not be restored (" + r.fallbackReason() + ") and the booted server"
            + " did not become ready: " + e.getMessage() + "; see " + logDir.resolve("server.err"), e);
      }
    }
    if (pidFile != null) {
      Path tmp = pidFile.resolveSibling("." + pidFile.getFileName() + "." + ProcessHandle.current().pid());
      java.nio.file.Files.writeString(tmp, r.pid() + "\n");
      java.nio.file.Files.move(tmp, pidFile, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
    double total = (System.nanoTime() - t0) / 1e9;
    if (r.fromSnapshot()) {
      System.err.printf(Locale.ROOT, "restore: %s restored from %s as process %d, answering in %.2f s%n", name,
          found.source(), r.pid(), total);
    } else {
      System.err.printf(Locale.ROOT, "restore: %s could not be restored (%s); booted as process %d in %.2f s%n", name,
          r.fallbackReason(), r.pid(), total);
    }
    if (json) {
      ObjectNode n = JsonOut.object();
      n.put("name", name);
      n.put("pid", r.pid());
      n.put("restored", r.fromSnapshot());
      if (r.fallbackReason() != null) {
        n.put("fallback_reason", r.fallbackReason());
      }
      if (found != null) {
        n.put("source", found.source());
        n.put("images", found.images().toString());
        n.put("bytes_fetched", found.bytesFetched());
        n.put("fetch_s", found.fetchTime().toNanos() / 1e9);
      }
      if (!r.stepsMs().isEmpty()) {
        n.putPOJO("steps_ms", r.stepsMs());
      }
      n.put("origin", origin);
      n.put("total_s", total);
      JsonOut.print(System.out, n);
    } else {
      System.out.println(r.fromSnapshot() ? name + ": restored, process " + r.pid()
          : name + ": booted instead of restored (" + r.fallbackReason() + "), process " + r.pid());
    }
    if (!waitForExit) {
      return 0;
    }
    return waitFor(r);
  }

  /**
   * In the foreground: passes SIGTERM on to the server and returns its status (restored trees: 0 once gone), saying
   * how it ended.
   */
  private int waitFor(SnapshotService.Restored r) throws InterruptedException {
    Thread hook = new Thread(() -> ProcessHandle.of(r.pid()).ifPresent(ProcessHandle::destroy), "thaw-restore-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    if (r.booted() != null) {
      int status = r.booted().waitFor();
      System.err.println("restore: the booted server (process " + r.pid() + ") ended with status " + status
          + (status > 128 ? " (signal " + (status - 128) + ")" : "") + "; its output is in " + logDir);
      return status;
    }
    Optional<ProcessHandle> h = ProcessHandle.of(r.pid());
    while (h.isPresent() && h.get().isAlive()) {
      Thread.sleep(500); // not our child: no exit status to collect, only its going
    }
    System.err.println("restore: the restored server (process " + r.pid() + ") has ended (a restored process is not"
        + " this command's child: its exit status cannot be known)");
    return 0;
  }
}
