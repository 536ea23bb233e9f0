package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.PidNamespaceProcess;
import dev.thaw.checkpoint.Probe;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.sidecar.SidecarSettings;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw checkpoint} and {@code thaw restore} end to end, with real CRIU and an S3 origin (S3Proxy): the warm
 * example server is snapshotted, its images pushed encrypted, and restored on a "new node" (an empty snapshot
 * directory) from the origin alone; damaged images and snapshots of another kind of node fall back to a cold boot that
 * answers, saying why.
 */
class SnapshotCommandsTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  @TempDir static Path shared;
  static S3ProxyServer s3;
  static Path s3Dir;
  static Path models;
  static MlpSpec spec;
  @TempDir Path tmp;
  private final List<Long> started = new ArrayList<>();
  /** The --model-repository arguments of the servers this class started: how {@link #ortServers()} knows them. */
  private static final java.util.Set<String> REPOS = java.util.concurrent.ConcurrentHashMap.newKeySet();
  private int http;
  private String origin;
  private Path keyFile;
  private Path probeFile;
  private String expectedAnswer;

  @BeforeAll
  static void startOriginAndMakeModel() throws Exception {
    s3Dir = shared.resolve("s3");
    s3 = S3ProxyServer.start(s3Dir);
    models = shared.resolve("models");
    spec = MlpSpec.forSize(2L << 20, 11);
    MlpGenerator.generate(models, "mlp", spec);
    REPOS.add("--model-repository=" + models);
  }

  @AfterAll
  static void stopOrigin() throws IOException {
    s3.close();
  }

  @BeforeEach
  void keyAndProbe() throws IOException {
    origin = s3.originUri("t" + System.nanoTime() + "/");
    keyFile = tmp.resolve("snapshot.key");
    Files.writeString(Files.createFile(keyFile, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"))),
        java.util.Base64.getEncoder().encodeToString(new java.security.SecureRandom().generateSeed(32)) + "\n");
  }

  @AfterEach
  void stopServers() {
    for (long pid : started) {
      ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
      PidNamespaceProcess.awaitGone(pid, 10_000);
    }
  }

  @Test
  void aWarmServerIsCheckpointedPushedEncryptedAndRestoredOnANewNodeFromTheOriginAlone() throws Exception {
    JsonNode taken = checkpoint();
    assertThat(taken.get("encrypted").asBoolean()).isTrue();
    assertThat(taken.get("image_bytes").asLong()).isGreaterThan(spec.weightBytes());
    assertThat(taken.get("tag").asText()).startsWith("snapshots/mlp-server:");
    assertThat(ortServers()).as("CRIU stopped the server once dumped").isEmpty();
    assertThat(originHolds("dev.thaw.examples.ortserver.OrtServer")).as("the origin holds no plaintext of the snapshot")
        .isFalse();

    JsonNode restored = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots", tmp.resolve("node2-snapshots").toString(), "--key-file", keyFile.toString(),
        "--log-dir", tmp.toString(), "--json");
    started.add(restored.get("pid").asLong());
    assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
    assertThat(restored.get("source").asText()).startsWith("snapshots/mlp-server:").contains(" at s3://");
    assertThat(restored.get("bytes_fetched").asLong()).isGreaterThanOrEqualTo(taken.get("image_bytes").asLong());
    assertThat(answer()).as("the restored server answers as the warm one did").isEqualTo(expectedAnswer);
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(Path.of(restored.get("images").asText()))))
        .isEqualTo("rwx------");
  }

  @Test
  void withLeaveRunningTheServerKeepsServingAndTheLocalSnapshotRestoresWithoutTheOrigin() throws Exception {
    JsonNode taken = checkpoint("--leave-running", "--no-push");
    assertThat(taken.has("tag")).isFalse();
    // what the sidecar lists and registers: the snapshot this node now keeps
    var kept = snapshotsKeptIn(tmp.resolve("snapshots"));
    assertThat(kept).extracting(SnapshotService.Local::name).containsExactly("mlp-server");
    assertThat(kept.getFirst().images().toString()).isEqualTo(taken.get("images").asText());
    assertThat(kept.getFirst().bytes()).isEqualTo(taken.get("image_bytes").asLong());
    assertThat(answer()).as("the original still answers").isEqualTo(expectedAnswer);
    for (long pid : ortServers()) {
      ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
      PidNamespaceProcess.awaitGone(pid, 10_000);
    }
    JsonNode restored = cli(0, "restore", "mlp-server", "--origin", "file://" + tmp.resolve("no-origin"),
        "--snapshots", tmp.resolve("snapshots").toString(),
        "--log-dir", tmp.toString(), "--json");
    started.add(restored.get("pid").asLong());
    assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
    assertThat(restored.get("bytes_fetched").asLong()).isZero();
    assertThat(answer()).isEqualTo(expectedAnswer);
  }

  @Test
  void aCorruptImageChunkAtTheOriginIsDetectedByItsHashAndTheServerBootsInsteadSayingWhy() throws Exception {
    checkpoint();
    corruptLargestObject();
    JsonNode r = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots", tmp.resolve("node2-snapshots").toString(), "--key-file", keyFile.toString(),
        "--log-dir", tmp.toString(), "--json");
    started.add(r.get("pid").asLong());
    assertThat(r.get("restored").asBoolean()).isFalse();
    assertThat(r.get("fallback_reason").asText()).contains("corrupt");
    assertThat(answer()).as("the booted server answers").isEqualTo(expectedAnswer);
    try (Stream<Path> left = Files.list(tmp.resolve("node2-snapshots").resolve("mlp-server"))) {
      assertThat(left.toList()).as("no half-fetched snapshot is left").isEmpty();
    }
  }

  @Test
  void aSnapshotOfAnotherModelIsRefusedNamingTheFieldAndWithNoFallbackItIsAnError() throws Exception {
    checkpoint();
    String other = "sha256:" + "ab".repeat(32);
    cli(1, "restore", "mlp-server", "--origin", origin, "--snapshots", tmp.resolve("node2-snapshots").toString(), "--key-file", keyFile.toString(), "--model", other,
        "--no-fallback");
    assertThat(lastErr).contains("no snapshot named mlp-server matches this node").contains("model_digest")
        .contains(other.substring(0, 20));
    assertThat(ortServers()).isEmpty();

    JsonNode r = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots", tmp.resolve("node2-snapshots").toString(), "--key-file", keyFile.toString(), "--model", other,
        "--log-dir", tmp.toString(), "--json");
    started.add(r.get("pid").asLong());
    assertThat(r.get("restored").asBoolean()).isFalse();
    assertThat(r.get("fallback_reason").asText()).contains("model_digest");
    assertThat(answer()).as("booted from the snapshot's command line").isEqualTo(expectedAnswer);
  }

  @Test
  void anUnsealedSnapshotAtTheOriginIsRefusedBeforeCriuAndBootsNothingUnlessAllowUnsealedTrustsTheOrigin()
      throws Exception {
    // a file:// origin: the process memory in clear stays out of the S3 store that other tests search for plaintext
    Files.createDirectories(tmp.resolve("file-origin"));
    origin = "file://" + tmp.resolve("file-origin");
    JsonNode taken = checkpoint("--no-encrypt");
    assertThat(taken.get("encrypted").asBoolean()).isFalse();
    Path logs = tmp.resolve("refused-logs");
    cli(1, "restore", "mlp-server", "--origin", origin, "--snapshots", tmp.resolve("node2-snapshots").toString(),
        "--key-file", keyFile.toString(), "--log-dir", logs.toString(), "--json");
    assertThat(lastErr).contains("not sealed").contains("--allow-unsealed").contains("give one after --");
    assertThat(ortServers()).as("neither restored nor booted from a command read in clear").isEmpty();
    assertThat(logs).as("nothing was started").doesNotExist();

    JsonNode r = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots",
        tmp.resolve("node2-snapshots").toString(), "--key-file", keyFile.toString(), "--allow-unsealed",
        "--log-dir", tmp.toString(), "--json");
    started.add(r.get("pid").asLong());
    assertThat(r.get("restored").asBoolean()).as(r.toString()).isTrue();
    assertThat(answer()).isEqualTo(expectedAnswer);
  }

  @Test
  void withNoFallbackARestoreThatFailsStartsNothingAndACommandToBootIsAContradiction() throws Exception {
    JsonNode taken = checkpoint("--no-push");
    try (Stream<Path> files = Files.list(Path.of(taken.get("images").asText()))) {
      for (Path p : files.filter(f -> f.getFileName().toString().startsWith("pages-")).toList()) {
        Files.delete(p); // the memory of the process is gone
      }
    }
    Path logs = tmp.resolve("no-fallback-logs");
    cli(1, "restore", "mlp-server", "--origin", "file://" + tmp.resolve("no-origin"), "--snapshots",
        tmp.resolve("snapshots").toString(), "--no-fallback", "--log-dir", logs.toString());
    assertThat(lastErr).contains("criu restore");
    assertThat(logs).as("no server was started, not even for a moment").doesNotExist();
    assertThat(ortServers()).isEmpty();

    cli(2, "restore", "mlp-server", "--snapshots", tmp.resolve("snapshots").toString(), "--no-fallback",
        "--log-dir", logs.toString(), "--", "/bin/true");
    assertThat(lastErr).contains("--no-fallback boots nothing");
    assertThat(logs).doesNotExist();
  }

  @Test
  void aServerReadingItsModelsFromAThawMountIsRestoredOnAFreshMountOfTheSameModel() throws Exception {
    origin = fileOrigin(); // the mount processes are separate JVMs, without the S3 store's credentials
    Path mnt = tmp.resolve("models-mount");
    cli(0, "push", models.toString(), origin, "--name", "mlp-repo:v1", "--chunk-size", "256k");
    Process first = mountProcess("mlp-repo:v1", mnt, tmp.resolve("cache-1"));
    Process second = null;
    try {
      JsonNode taken = checkpointServerOn(mnt);
      assertThat(taken.get("tag").asText()).startsWith("snapshots/mlp-server:");
      // the node's mount goes, and a new one of the same model comes: a new process, an empty cache
      cli(0, "unmount", mnt.toString());
      assertThat(first.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      second = mountProcess("mlp-repo:v1", mnt, tmp.resolve("cache-2"));

      JsonNode restored = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots",
          tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--no-fallback", "--json");
      started.add(restored.get("pid").asLong());
      assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
      assertThat(answer()).as("the restored server answers exactly as before").isEqualTo(expectedAnswer);
    } finally {
      unmountQuietly(mnt, first, second);
    }
  }

  @Test
  void withItsWeightsMappedFromTheMountTheRestoreMountsTheModelItselfAndTheWeightsStreamAgain() throws Exception {
    origin = fileOrigin(); // the mount processes are separate JVMs, without the S3 store's credentials
    Path mnt = tmp.resolve("models-mount");
    cli(0, "push", models.toString(), origin, "--name", "mlp-repo:v1", "--chunk-size", "256k");
    Process first = mountProcess("mlp-repo:v1", mnt, tmp.resolve("cache-1"));
    try {
      checkpointServerOn(mnt, "--ort-session-config=session.disable_prepacking=1");
      cli(0, "unmount", mnt.toString());
      assertThat(first.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();

      // nothing is mounted there now: the restore mounts the model the server read, at the same path
      JsonNode restored = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots",
          tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--no-fallback",
          "--mount-cache", tmp.resolve("cache-restore").toString(), "--log-dir", tmp.resolve("restore-logs").toString(),
          "--json");
      started.add(restored.get("pid").asLong());
      assertThat(lastErr).contains("restore: mounted sha256:").contains(mnt.toString());
      assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
      assertThat(answer()).as("the restored server answers exactly as before").isEqualTo(expectedAnswer);
      // the mount's process writes a fetched chunk to its cache as it serves it: the last ones land a moment later
      org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(20))
          .untilAsserted(() -> assertThat(dirBytes(tmp.resolve("cache-restore")))
              .as("the weights streamed into the new mount's cache").isGreaterThan(spec.weightBytes() / 2));
    } finally {
      unmountQuietly(mnt, first);
    }
  }

  @Test
  void aServerStartedWhileAnUnrelatedFuseMountExistedIsCheckpointedAfterThatMountIsGone() throws Exception {
    origin = fileOrigin(); // the mount processes are separate JVMs, without the S3 store's credentials
    Path other = tmp.resolve("unrelated-mount");
    cli(0, "push", models.toString(), origin, "--name", "other:v1", "--chunk-size", "256k");
    Process unrelated = mountProcess("other:v1", other, tmp.resolve("cache-other"));
    try {
      startServer(); // its namespace gets a copy of the unrelated mount
      cli(0, "unmount", other.toString());
      assertThat(unrelated.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      expectedAnswer = answer();
      cli(0, "checkpoint", "--pid", Long.toString(ortServers().getFirst()), "--name", "mlp-server", "--ready-url",
          "http://127.0.0.1:" + http + "/v2/health/ready", "--origin", origin, "--snapshots",
          tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--no-push", "--json");
      JsonNode restored = cli(0, "restore", "mlp-server", "--origin", origin, "--snapshots",
          tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--no-fallback", "--json");
      started.add(restored.get("pid").asLong());
      assertThat(answer()).isEqualTo(expectedAnswer);
    } finally {
      unmountQuietly(other, unrelated);
    }
  }

  @Test
  void theSidecarRestoresAServerThatReadItsModelsThroughOneOfItsMountsMountingThemAgain() throws Exception {
    origin = fileOrigin();
    cli(0, "push", models.toString(), origin, "--name", "mlp-repo:v1", "--chunk-size", "256k");
    var settings = SidecarSettings.standalone(tmp, origin);
    settings.put("thaw.snapshot-key-file", keyFile.toString());
    try (var sidecar = dev.thaw.sidecar.Sidecar.start(settings)) {
      var http = java.net.http.HttpClient.newHttpClient();
      java.util.function.BiFunction<String, String, JsonNode> call = (path, json) -> {
        try {
          var b = SidecarSettings.api(sidecar, path).header("Content-Type", "application/json");
          var r = http.send((json == null ? b.DELETE() : b.POST(java.net.http.HttpRequest.BodyPublishers.ofString(json)))
              .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
          assertThat(r.statusCode()).as(path + " " + r.body()).isBetween(200, 204);
          return r.body().isBlank() ? null : JSON.readTree(r.body());
        } catch (IOException | InterruptedException e) {
          throw new IllegalStateException(e);
        }
      };
      JsonNode mounted = call.apply("/v1/mounts", "{\"source\": \"mlp-repo:v1\", \"path\": \"repo\"}");
      Path mnt = Path.of(mounted.get("mountpoint").asText());
      startServer(mnt);
      expectedAnswer = answer();
      ObjectNode take = JSON.createObjectNode();
      take.put("pid", ortServers().getFirst());
      take.put("name", "on-mount");
      take.set("probe", probe().set("expect", JSON.readTree(expectedAnswer)));
      take.put("push", false);
      call.apply("/v1/snapshots", JSON.writeValueAsString(take));
      call.apply("/v1/mounts/" + mounted.get("id").asText(), null); // the model's mount goes
      assertThat(dev.thaw.fuse.MountTable.find(mnt)).isEmpty();

      JsonNode restored = call.apply("/v1/snapshots/on-mount/restore", "{\"no_fallback\": true}");
      started.add(restored.get("pid").asLong());
      assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
      assertThat(dev.thaw.fuse.MountTable.find(mnt)).as("the sidecar mounted the model again").isPresent();
      assertThat(answer()).isEqualTo(expectedAnswer);
    }
  }

  @Test
  void thawRunSaysItsServerWasCheckpointedRatherThanThatItFailed() throws Exception {
    int[] ports = FreePorts.pick(2);
    http = ports[0];
    probeFile = tmp.resolve("probe.json");
    Path log = tmp.resolve("thaw-run.log");
    Process run = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"),
        "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(), "run",
        "--stdout", tmp.resolve("server.out").toString(), "--stderr", tmp.resolve("server.err").toString(), "--",
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-XX:-UsePerfData",
        "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp", System.getProperty("java.class.path"),
        "dev.thaw.examples.ortserver.OrtServer", "--model-repository=" + models, "--http-port=" + http,
        "--grpc-port=" + ports[1], "--allow-metrics=false", "--warmup", "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath())
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    try {
      expectedAnswer = answer();
      cli(0, "checkpoint", "--pid", Long.toString(ortServers().getFirst()), "--name", "mlp-server", "--ready-url",
          "http://127.0.0.1:" + http + "/v2/health/ready", "--origin", fileOrigin(), "--snapshots",
          tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--no-push", "--json");
      assertThat(run.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      assertThat(run.exitValue()).as(Files.readString(log)).isZero();
      assertThat(Files.readString(log)).contains("was checkpointed as mlp-server").contains("thaw restore mlp-server")
          .doesNotContain("exited with status");
    } finally {
      run.destroyForcibly();
    }
  }

  @Test
  void aProbeThatDoesNotGetItsExpectedAnswerTakesNoSnapshot() throws Exception {
    startServer();
    ObjectNode p = probe();
    p.set("expect", JSON.readTree("{\"outputs\": []}"));
    JSON.writeValue(probeFile.toFile(), p);
    Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
    long pid = ortServers().getFirst();
    cli(1, "checkpoint", "--pid", Long.toString(pid), "--name", "mlp-server", "--probe", probeFile.toString(),
        "--origin", origin, "--snapshots", tmp.resolve("snapshots").toString(),
        "--key-file", keyFile.toString());
    assertThat(lastErr).contains("answers wrongly").contains("no snapshot was taken");
    assertThat(answer()).as("the server keeps running").isNotEmpty();
    try (Stream<Path> left = Files.list(tmp.resolve("snapshots").resolve("mlp-server"))) {
      assertThat(left.toList()).as("no partial images are kept").isEmpty();
    }
  }

  // --- helpers ---

  private final ThawRun thaw = new ThawRun();
  private String lastErr = "";

  /** Starts the server under `thaw run`'s PID namespace, waits for its first answer, and checkpoints it. */
  @Test
  void theSidecarApiTakesASnapshotOfTheWarmServerThatThawRestoreRestoresAndRefusesBadRequests() throws Exception {
    startServer();
    Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
    expectedAnswer = answer();
    Path snapshotsDir = tmp.resolve("api-snapshots");
    var settings = SidecarSettings.standalone(tmp, origin);
    settings.put("thaw.snapshots", snapshotsDir.toString());
    settings.put("thaw.snapshot-key-file", keyFile.toString());
    try (var sidecar = dev.thaw.sidecar.Sidecar.start(settings)) {
      ObjectNode body = JSON.createObjectNode();
      body.put("pid", ortServers().getFirst());
      body.put("name", "api-server");
      body.set("probe", probe().set("expect", JSON.readTree(expectedAnswer)));
      var http = java.net.http.HttpClient.newHttpClient();
      java.util.function.Function<String, java.net.http.HttpResponse<String>> post = json -> {
        try {
          return http.send(dev.thaw.sidecar.SidecarSettings.api(sidecar, "/v1/snapshots")
              .header("Content-Type", "application/json").POST(java.net.http.HttpRequest.BodyPublishers.ofString(json))
              .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      };
      assertThat(post.apply("{\"name\": \"x\"}").body()).contains("\"field\":\"pid\"");
      assertThat(post.apply("{\"pid\": 999999999, \"name\": \"x\"}").statusCode()).isEqualTo(404);
      assertThat(post.apply("{\"pid\": 1, \"name\": \"../up\"}").body()).contains("\"field\":\"name\"");

      var taken = post.apply(JSON.writeValueAsString(body));
      assertThat(taken.statusCode()).as(taken.body()).isEqualTo(201);
      JsonNode t = JSON.readTree(taken.body());
      assertThat(t.get("tag").asText()).startsWith("snapshots/api-server:");
      assertThat(t.get("encrypted").asBoolean()).isTrue();
      var listed = JSON.readTree(http.send(dev.thaw.sidecar.SidecarSettings.api(sidecar, "/v1/snapshots").build(),
          java.net.http.HttpResponse.BodyHandlers.ofString()).body());
      assertThat(listed.findValuesAsText("name")).containsExactly("api-server");
      assertThat(ortServers()).as("CRIU stopped the server once dumped").isEmpty();

      var restore = http.send(dev.thaw.sidecar.SidecarSettings.api(sidecar, "/v1/snapshots/api-server/restore")
          .header("Content-Type", "application/json").POST(java.net.http.HttpRequest.BodyPublishers.ofString("{}"))
          .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(restore.statusCode()).as(restore.body()).isEqualTo(200);
      JsonNode restored = JSON.readTree(restore.body());
      started.add(restored.get("pid").asLong());
      assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
      assertThat(answer()).as("the restored server answers as the warm one did").isEqualTo(expectedAnswer);
      var none = http.send(dev.thaw.sidecar.SidecarSettings.api(sidecar, "/v1/snapshots/nothing-here/restore")
          .header("Content-Type", "application/json").POST(java.net.http.HttpRequest.BodyPublishers.ofString("{}"))
          .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(none.statusCode()).as(none.body()).isEqualTo(404);
      assertThat(none.body()).contains("no command to boot instead");
    }
  }

  @Test
  void aClusterMemberAssignedAModelFetchesTheSnapshotItsDemandNamesAhead() throws Exception {
    JsonNode taken = checkpoint(); // pushed to the origin as snapshots/mlp-server:KEYTAG
    assertThat(taken.get("tag").asText()).startsWith("snapshots/mlp-server:");
    Path node2 = tmp.resolve("node2-snapshots");
    try (var etcd = dev.thaw.testkit.EtcdCluster.start(tmp.resolve("etcd"), 1)) {
      var settings = SidecarSettings.member(tmp, origin, etcd.endpoints(), "/thaw", "n2");
      settings.put("thaw.snapshots", node2.toString());
      settings.put("thaw.snapshot-key-file", keyFile.toString());
      try (var sidecar = dev.thaw.sidecar.Sidecar.start(settings)) {
        var member = sidecar.getBean(dev.thaw.sidecar.cluster.ClusterMember.class);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(15)).until(member::isLeader);
        member.setDemand("mlp:v1", 1, spec.weightBytes(), 10, "mlp-server");
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> "fetched".equals(
            ((java.util.Map<?, ?>) member.planView().get("snapshots_ahead")).get("mlp-server")));
      }
    }
    assertThat(snapshotsKeptIn(node2)).extracting(SnapshotService.Local::name).containsExactly("mlp-server");
    // and thaw restore finds it there: nothing from the origin
    JsonNode restored = cli(0, "restore", "mlp-server", "--origin", "file://" + tmp.resolve("no-origin"),
        "--snapshots", node2.toString(), "--key-file", keyFile.toString(), "--log-dir", tmp.toString(), "--json");
    started.add(restored.get("pid").asLong());
    assertThat(restored.get("restored").asBoolean()).as(restored.toString()).isTrue();
    assertThat(restored.get("bytes_fetched").asLong()).isZero();
    assertThat(answer()).isEqualTo(expectedAnswer);
  }

  /** What the snapshot service of a node keeping its snapshots in {@code dir} lists. */
  private List<SnapshotService.Local> snapshotsKeptIn(Path dir) throws IOException {
    return SnapshotService.builder(dir, origin, ThawCommand.version()).build().list();
  }

  private JsonNode checkpoint(String... extra) throws Exception {
    startServer();
    JSON.writeValue(probeFile.toFile(), probe());
    Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
    expectedAnswer = answer();
    ObjectNode withExpect = probe();
    withExpect.set("expect", JSON.readTree(expectedAnswer));
    JSON.writeValue(probeFile.toFile(), withExpect);
    long pid = ortServers().getFirst();
    List<String> args = new ArrayList<>(List.of("checkpoint", "--pid", Long.toString(pid), "--name", "mlp-server",
        "--probe", probeFile.toString(), "--origin", origin, "--snapshots", tmp.resolve("snapshots").toString(), "--key-file", keyFile.toString(), "--json"));
    args.addAll(List.of(extra));
    return cli(0, args.toArray(String[]::new));
  }

  private void startServer() throws IOException {
    startServer(models);
  }

  /** The example server on the model repository {@code repo}, with {@code extra} arguments. */
  private void startServer(Path repo, String... extra) throws IOException {
    REPOS.add("--model-repository=" + repo);
    int[] ports = FreePorts.pick(2);
    http = ports[0];
    probeFile = tmp.resolve("probe.json");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> cmd = new ArrayList<>(List.of(java, "-XX:-UsePerfData", "--enable-native-access=ALL-UNNAMED",
        "-Xmx256m", "-cp", System.getProperty("java.class.path"), "dev.thaw.examples.ortserver.OrtServer",
        "--model-repository=" + repo, "--http-port=" + http, "--grpc-port=" + ports[1], "--allow-metrics=false",
        "--warmup",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    cmd.addAll(List.of(extra));
    PidNamespaceProcess p = PidNamespaceProcess.start(cmd, tmp.resolve("server.out"), tmp.resolve("server.err"));
    started.add(p.pid());
  }

  /** Starts the example server on {@code mnt}, waits for its answer, and checkpoints it (pushed). */
  private JsonNode checkpointServerOn(Path mnt, String... serverArgs) throws Exception {
    startServer(mnt, serverArgs);
    JSON.writeValue(probeFile.toFile(), probe());
    expectedAnswer = answer();
    ObjectNode withExpect = probe();
    withExpect.set("expect", JSON.readTree(expectedAnswer));
    JSON.writeValue(probeFile.toFile(), withExpect);
    return cli(0, "checkpoint", "--pid", Long.toString(ortServers().getFirst()), "--name", "mlp-server", "--probe",
        probeFile.toString(), "--origin", origin, "--snapshots", tmp.resolve("snapshots").toString(), "--key-file",
        keyFile.toString(), "--json");
  }

  /** {@code thaw mount SOURCE MNT} as a process of its own, as a node runs it; returns once it is ready. */
  private Process mountProcess(String source, Path mnt, Path cache) throws Exception {
    Path log = tmp.resolve("mount-" + mnt.getFileName() + "-" + System.nanoTime() + ".log");
    Process p = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"),
        "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu", "-cp",
        System.getProperty("java.class.path"), Main.class.getName(), "mount", source, mnt.toString(), "--origin", origin,
        "--cache", cache.toString()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60))
        .until(() -> Files.readString(log).contains("ready") || !p.isAlive());
    assertThat(p.isAlive()).as(Files.readString(log)).isTrue();
    return p;
  }

  /** Ends whatever is mounted at {@code mnt} (the restore's own mount too) and the mount processes given. */
  private void unmountQuietly(Path mnt, Process... mounts) throws Exception {
    if (dev.thaw.fuse.MountTable.find(mnt).isPresent()) {
      thaw.run("unmount", mnt.toString());
    }
    for (Process p : mounts) {
      if (p != null && !p.waitFor(20, java.util.concurrent.TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
    }
    if (dev.thaw.fuse.MountTable.find(mnt).isPresent()) {
      dev.thaw.fuse.MountTable.unmount(mnt, true);
    }
  }

  private String fileOrigin() throws IOException {
    return Files.createDirectories(tmp.resolve("file-origin")).toUri().toString();
  }

  private static long dirBytes(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
    }
  }

  private ObjectNode probe() {
    ObjectNode p = JSON.createObjectNode();
    p.put("url", "http://127.0.0.1:" + http + "/v2/models/mlp/infer");
    ObjectNode input = p.putObject("request").putArray("inputs").addObject();
    input.put("name", MlpGenerator.INPUT).put("datatype", "FP32");
    input.putArray("shape").add(1).add(spec.inputDim());
    ArrayNode data = input.putArray("data");
    for (float f : spec.sampleInput(1)) {
      data.add(f);
    }
    return p;
  }

  private String answer() throws Exception {
    Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
    JsonNode p = probe();
    return new Probe(p.get("url").asText(), JSON.writeValueAsString(p.get("request"))).ask(Duration.ofSeconds(30));
  }

  /** Live ort-server JVMs serving this test's models (the java processes, not the unshare that started them). */
  private static List<Long> ortServers() throws IOException {
    List<Long> out = new ArrayList<>();
    try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
      for (Path p : procs.filter(q -> q.getFileName().toString().chars().allMatch(Character::isDigit)).toList()) {
        try {
          String[] argv = Files.readString(p.resolve("cmdline")).split("\0");
          long pid = Long.parseLong(p.getFileName().toString());
          if (argv.length > 0 && argv[0].endsWith("/java") && List.of(argv).stream().anyMatch(REPOS::contains)
              && PidNamespaceProcess.exists(pid) && isNamespaceInit(p)) {
            out.add(pid);
          }
        } catch (IOException gone) {
          // exited meanwhile
        }
      }
    }
    return out;
  }

  /** PID 1 of its own namespace: the server, not a thaw run whose command line names it. */
  private static boolean isNamespaceInit(Path proc) throws IOException {
    return Files.readAllLines(proc.resolve("status")).stream().filter(l -> l.startsWith("NSpid:"))
        .anyMatch(l -> l.strip().endsWith("\t1") || l.strip().endsWith(" 1"));
  }

  private static boolean originHolds(String text) throws IOException {
    byte[] needle = text.getBytes(StandardCharsets.UTF_8);
    try (Stream<Path> files = Files.walk(s3Dir)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        if (indexOf(Files.readAllBytes(f), needle) >= 0) {
          return true;
        }
      }
    }
    return false;
  }

  private static int indexOf(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  /** Flips a byte in the middle of the origin's largest chunk object (the process memory's). */
  private static void corruptLargestObject() throws IOException {
    Path largest;
    try (Stream<Path> files = Files.walk(s3Dir)) {
      largest = files.filter(Files::isRegularFile).filter(f -> f.toString().contains("chunks"))
          .max(Comparator.comparingLong(f -> f.toFile().length())).orElseThrow();
    }
    try (FileChannel ch = FileChannel.open(largest, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      long at = ch.size() / 2;
      ch.read(b, at);
      b.put(0, (byte) (b.get(0) ^ 0xff)).rewind();
      ch.write(b, at);
    }
  }

  private JsonNode cli(int expectedStatus, String... args) throws IOException {
    int status = thaw.run(args);
    lastErr = thaw.err();
    assertThat(status).as("thaw " + String.join(" ", args) + "\n" + lastErr).isEqualTo(expectedStatus);
    String o = thaw.out().strip();
    return o.startsWith("{") ? JSON.readTree(o) : null; // commands run without --json print lines
  }
}
