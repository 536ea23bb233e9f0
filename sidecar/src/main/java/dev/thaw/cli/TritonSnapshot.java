package dev.thaw.cli;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.store.PushProgress;
import dev.thaw.triton.ModelLoads;
import dev.thaw.triton.TritonCommandLine;
import dev.thaw.triton.TritonWrapper;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * {@code thaw triton --snapshot NAME}: the whole Triton server snapshotted once warm, and restored instead of booted
 * when the wrapper starts again with the same command line on the same repositories.
 *
 * <p>Triton runs as PID 1 of a PID namespace of its own ({@link TritonProcess}), its output on files under
 * {@code SNAPSHOTS/.triton/NAME/} that are copied to the wrapper's. Once the first inference through the proxies is
 * answered, {@link SnapshotService#take} snapshots it, leaving it running, with a probe: that HTTP request and the
 * answer Triton gives it again (a JSON inference), or for an inference over gRPC (or with a binary body) the model's
 * readiness ({@code GET /v2/models/MODEL/ready}), each sent to Triton's own loopback HTTP port. The snapshot is kept on
 * this node only, with the manifests of the mounted repositories as its model digest; {@code record.json} beside the
 * output files says what it was taken of: the command line, each repository's manifest and mount point, and Triton's
 * loopback ports. A later start compares the record with its own command line and repositories, and restores with the
 * recorded ports when they match; the restored server must answer its readiness URL and the probe as when taken. When
 * anything differs or fails, it says why in one line and Triton boots (and is snapshotted once warm, replacing the
 * old snapshot).
 */
final class TritonSnapshot {
  private static final String RECORD = "record.json";
  private static final Duration READY_TIMEOUT = Duration.ofMinutes(5);
  private static final Duration WARM_TIMEOUT = Duration.ofMinutes(10);
  private static final Duration LOCK_TIMEOUT = Duration.ofSeconds(30);

  private final String name;
  private final Path state;
  private final SnapshotService service;
  private final List<String> command;

  /** What a snapshot was taken of: the command after --, the repositories, Triton's loopback ports, the images. */
  record Record(@JsonProperty("command") List<String> command,
      @JsonProperty("repositories") List<Repository> repositories, @JsonProperty("http_port") int httpPort,
      @JsonProperty("grpc_port") int grpcPort, @JsonProperty("metrics_port") int metricsPort,
      @JsonProperty("images") String images) {
    TritonWrapper.InternalPorts ports() {
      return new TritonWrapper.InternalPorts(httpPort, grpcPort, metricsPort);
    }
  }

  /** One --model-repository as given, where Triton read it, and its manifest's digest (null: a local directory). */
  record Repository(@JsonProperty("given") String given, @JsonProperty("at") String at,
      @JsonProperty("manifest") String manifest) {}

  /** How Triton starts this time: restored from the snapshot, or booted, and the ports it serves on. */
  record Start(boolean restored, TritonWrapper.InternalPorts ports, TritonWrapper.Launcher launcher,
      TritonProcess process) {
    /** Kills a restored Triton the wrapper could not serve (its public ports were taken). */
    void abandon() {
      if (process != null) {
        process.destroyForcibly();
      }
    }
  }

  TritonSnapshot(String name, Path snapshots, String origin, List<String> command) throws IOException {
    this.name = name;
    this.command = List.copyOf(command);
    Path root = snapshots.toAbsolutePath();
    this.service = SnapshotService.builder(root, origin, ThawCommand.version()).build();
    dev.thaw.store.ModelName.parse("snapshots/" + name + ":x"); // refuses names that could escape the directory
    this.state = root.resolve(".triton").resolve(name);
    createOwnerOnly(root);
    createOwnerOnly(root.resolve(".triton"));
    createOwnerOnly(state);
  }

  String name() {
    return name;
  }

  /**
   * Restores Triton from the snapshot when its record matches this start ({@code repositories}: where each of
   * {@code line}'s repositories is read; {@code manifests}: each one's digest, null for a local directory); else says
   * why on stderr and returns how to boot it.
   */
  Start restoreOrBoot(TritonCommandLine line, List<Path> repositories, List<String> manifests) throws IOException {
    Path out = state.resolve("triton.out");
    Path err = state.resolve("triton.err");
    truncate(out);
    truncate(err);
    Record record = readRecord();
    String mismatch = record == null ? "no snapshot named " + name + " was taken here yet"
        : differences(record, line, repositories, manifests);
    if (mismatch == null) {
      long t0 = System.nanoTime();
      try {
        SnapshotService.Restoring r = service.restore(new SnapshotService.Restore(name, modelDigest(line, manifests),
            false, true, READY_TIMEOUT, state), SnapshotService.FetchProgress.NONE);
        TritonProcess restored = TritonProcess.restored(r.restored().pid(), out, err);
        List<String> expected = line.tritonCommand(repositories, record.httpPort(), record.grpcPort(),
            record.metricsPort());
        System.err.printf(Locale.ROOT, "thaw triton: restored Triton from snapshot %s in %d ms (process %d; it "
            + "answered its probe as when the snapshot was taken)%n", name, (System.nanoTime() - t0) / 1_000_000,
            restored.pid());
        return new Start(true, record.ports(), c -> {
          if (!c.equals(expected)) {
            throw new IOException("the restored Triton was started as " + expected + ", not " + c);
          }
          return restored;
        }, restored);
      } catch (IOException | RuntimeException e) {
        mismatch = "the restore failed: " + firstLine(e.getMessage());
      }
    }
    System.err.println("thaw triton: not restored from snapshot " + name + ": " + mismatch + "; booting Triton, "
        + "which is snapshotted once warm");
    return new Start(false, TritonWrapper.InternalPorts.pick(), c -> TritonProcess.boot(c, out, err), null);
  }

  /**
   * Once {@code triton} has answered its first inference, snapshots it (leaving it running) and records what it was
   * taken of; says on stderr what happened. Returns at once.
   */
  void takeWhenWarm(TritonWrapper triton, TritonCommandLine line, List<Path> repositories, List<String> manifests) {
    triton.firstInferenceAnswered().thenAcceptAsync(first -> {
      try {
        take(triton, first, line, repositories, manifests);
      } catch (IOException | RuntimeException e) {
        System.err.println("thaw triton: snapshot " + name + " not taken: " + firstLine(e.getMessage()));
      }
    }, r -> Thread.ofVirtual().name("thaw-triton-snapshot").start(r));
  }

  private void take(TritonWrapper triton, ModelLoads.Inference first, TritonCommandLine line, List<Path> repositories,
      List<String> manifests) throws IOException {
    TritonWrapper.InternalPorts ports = triton.internalPorts();
    String base = "http://127.0.0.1:" + ports.http();
    Probe probe = first.recorded() ? new Probe(base + first.path(), new String(first.body(), StandardCharsets.UTF_8))
        : new Probe(base + "/v2/models/" + URLEncoder.encode(first.model(), StandardCharsets.UTF_8).replace("+", "%20")
            + "/ready", null);
    System.err.printf("thaw triton: Triton is warm (model '%s' answered); taking snapshot %s with the probe %s %s%n",
        first.model(), name, probe.body() == null ? "GET" : "POST", probe.url());
    SnapshotService.Taken taken = service.take(new SnapshotService.Take(name, triton.pid(),
        base + "/v2/health/ready", probe, null, true, WARM_TIMEOUT, LOCK_TIMEOUT, modelDigest(line, manifests), false,
        false), PushProgress.NONE);
    for (SnapshotService.Local old : service.list()) {
      if (old.name().equals(name) && !old.images().equals(taken.images())) {
        service.delete(old); // one snapshot per name: the record speaks of the newest
      }
    }
    List<Repository> repos = new ArrayList<>();
    for (int i = 0; i < repositories.size(); i++) {
      repos.add(new Repository(line.repositories().get(i).given(), repositories.get(i).toString(), manifests.get(i)));
    }
    writeRecord(new Record(command, repos, ports.http(), ports.grpc(), ports.metrics(), taken.images().toString()));
    System.err.printf(Locale.ROOT, "thaw triton: snapshot %s taken in %.2f s (%s of images in %s); Triton runs on, "
        + "and the next thaw triton --snapshot %s with this command line restores it%n", name, taken.dumpSeconds(),
        Units.bytes(taken.imageBytes()), taken.images(), name);
  }

  /** Why {@code r} does not describe this start, or null when it does. */
  private String differences(Record r, TritonCommandLine line, List<Path> repositories, List<String> manifests) {
    if (!r.command().equals(command)) {
      int i = 0;
      while (i < r.command().size() && i < command.size() && r.command().get(i).equals(command.get(i))) {
        i++;
      }
      String now = i < command.size() ? "'" + command.get(i) + "'" : "nothing";
      String then = i < r.command().size() ? "'" + r.command().get(i) + "'" : "nothing";
      return "it was taken of another command line (argument " + (i + 1) + " after -- is " + now + " here, was "
          + then + ")";
    }
    if (r.repositories().size() != repositories.size()) {
      return "it was taken with " + r.repositories().size() + " repositories, this start has " + repositories.size();
    }
    for (int i = 0; i < repositories.size(); i++) {
      Repository then = r.repositories().get(i);
      String given = line.repositories().get(i).given();
      if (!Objects.equals(then.manifest(), manifests.get(i))) {
        return "the repository " + given + " has changed since (manifest " + abbreviate(manifests.get(i))
            + " now, " + abbreviate(then.manifest()) + " then)";
      }
      if (!then.at().equals(repositories.get(i).toString())) {
        return "the repository " + given + " is mounted at " + repositories.get(i) + ", and Triton read it at "
            + then.at() + " (give the same --mount-root)";
      }
    }
    if (!Files.isRegularFile(Path.of(r.images()).resolve("snapshot.json"))) {
      return "its images are gone from " + r.images();
    }
    return null;
  }

  /**
   * What the snapshot's key holds as its model: the one mounted repository's manifest digest, or a digest of every
   * mounted repository's (in order); null when Triton reads only local directories.
   */
  static String modelDigest(TritonCommandLine line, List<String> manifests) {
    List<String> mounted = new ArrayList<>();
    for (int i = 0; i < manifests.size(); i++) {
      if (manifests.get(i) != null) {
        mounted.add(line.repositories().get(i).given() + " " + manifests.get(i));
      }
    }
    if (mounted.isEmpty()) {
      return null;
    }
    if (mounted.size() == 1) {
      return mounted.getFirst().substring(mounted.getFirst().lastIndexOf(' ') + 1);
    }
    try {
      byte[] d = MessageDigest.getInstance("SHA-256").digest(String.join("\n", mounted)
          .getBytes(StandardCharsets.UTF_8));
      return "sha256:" + HexFormat.of().formatHex(d);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private Record readRecord() throws IOException {
    Path file = state.resolve(RECORD);
    if (!Files.exists(file)) {
      return null;
    }
    try {
      return JsonOut.MAPPER.readValue(file.toFile(), Record.class);
    } catch (IOException e) {
      throw new IOException("cannot read " + file + " (delete it to snapshot afresh): " + e.getMessage(), e);
    }
  }

  private void writeRecord(Record r) throws IOException {
    Path tmp = state.resolve("." + RECORD + "." + ProcessHandle.current().pid());
    JsonOut.MAPPER.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), r);
    Files.move(tmp, state.resolve(RECORD), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private static void truncate(Path file) throws IOException {
    Files.write(file, new byte[0]);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
  }

  private static void createOwnerOnly(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      Files.createDirectories(dir);
    }
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
  }

  private static String abbreviate(String digest) {
    return digest == null ? "none (a local directory)" : digest.length() > 19 ? digest.substring(0, 19) + "…" : digest;
  }

  /** A message in one line: its first, and when that ends with ':' (CRIU's log follows), the log's first error. */
  private static String firstLine(String message) {
    if (message == null) {
      return "no reason given";
    }
    String[] lines = message.split("\n");
    String first = lines[0].strip();
    if (first.endsWith(":")) {
      first = first.substring(0, first.length() - 1);
      if (lines.length > 1 && !lines[1].isBlank() && !lines[1].strip().equals("...")) {
        first += ": " + lines[1].strip();
      }
    }
    return first;
  }
}
