package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.SnapshotService.Fallback;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Hashes;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A snapshot fetched from the origin runs only what the snapshot key vouches for. Whoever can write the origin but
 * holds no key (it reads and writes every object there, {@code key.json} in clear) cannot make a node restore or boot
 * anything of theirs: an unsealed snapshot with a planted command, image files swapped or put back from an older push,
 * a record edited or moved to another name are each refused before CRIU runs, naming why, and their command never
 * runs. A real warm ort-server is snapshotted once; the origin is a file:// directory; CRIU is the real one, wrapped to
 * record each restore it is asked for.
 */
class SnapshotTrustTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String NAME = "mlp-server";
  @TempDir static Path shared;
  static Criu realCriu;
  static Path images;
  static Probe probe;
  static String answer;
  static int http;

  @TempDir Path tmp;
  private Criu criu;
  private Path criuRestores;
  private ModelStore origin;
  private final SnapshotCipher key = new SnapshotCipher(randomKey(1));
  private final List<SnapshotService.Restored> running = new ArrayList<>();

  @BeforeAll
  static void takeOneWarmSnapshot() throws Exception {
    realCriu = Criu.locate();
    Path models = shared.resolve("models");
    MlpSpec spec = MlpSpec.forSize(1L << 20, 5);
    MlpGenerator.generate(models, "mlp", spec);
    int[] ports = TestServers.freePorts(2);
    http = ports[0];
    StringBuilder data = new StringBuilder();
    for (float f : spec.sampleInput(1)) {
      data.append(data.isEmpty() ? "" : ",").append(f);
    }
    probe = new Probe("http://127.0.0.1:" + http + "/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,"
        + spec.inputDim() + "],\"datatype\":\"FP32\",\"data\":[" + data + "]}]}");
    try (PidNamespaceProcess server = TestServers.ortServer(models, http, ports[1], false, shared.resolve("first"))) {
      images = shared.resolve("images");
      SnapshotMetadata m = Snapshots.take(realCriu, server.pid(), images, new Snapshots.TakeRequest(
          "http://127.0.0.1:" + http + "/v2/health/ready", probe, false, Duration.ofSeconds(60), "sha256:model", "test",
          Optional.empty(), Duration.ofSeconds(10)));
      answer = m.answer();
      assertThat(PidNamespaceProcess.awaitGone(server.pid(), 10_000)).isTrue();
    } catch (IOException e) {
      throw new IOException(e.getMessage() + "; the server's log: " + Files.readString(shared.resolve("first.err")), e);
    }
  }

  @AfterAll
  static void nothingOfTheSnapshotRunsOn() throws IOException {
    assertThat(SnapshotsTest.serversOf(shared.resolve("models"))).isEmpty();
  }

  @BeforeEach
  void originAndRecordingCriu() throws IOException {
    Files.createDirectories(tmp.resolve("origin"));
    origin = new ModelStore(Origins.open("file://" + tmp.resolve("origin")));
    criuRestores = tmp.resolve("criu-restores");
    Path wrapper = tmp.resolve("criu");
    Files.writeString(wrapper, "#!/bin/sh\n[ \"$1\" = restore ] && echo restore >> " + criuRestores + "\nexec "
        + realCriu.binary() + " \"$@\"\n");
    Files.setPosixFilePermissions(wrapper, PosixFilePermissions.fromString("rwx------"));
    criu = new Criu(wrapper);
  }

  @AfterEach
  void stopWhatRuns() {
    for (SnapshotService.Restored r : running) {
      if (r.booted() != null) {
        r.booted().close();
      } else {
        Snapshots.kill(r.pid());
      }
    }
  }

  @Test
  void aSealedSnapshotFromTheOriginRestoresOnANodeWithTheKeyAndAnswersAsWhenTaken() throws Exception {
    SnapshotService.Pushed pushed = sealedPush();
    SnapshotService.Restoring r = restore(service("node2", Optional.of(key), false, Fallback.RECORDED), null);
    assertThat(r.restored().fromSnapshot()).as(String.valueOf(r.restored().fallbackReason())).isTrue();
    assertThat(r.found().source()).startsWith(pushed.tag().toString());
    assertThat(probe.ask(Duration.ofSeconds(30))).isEqualTo(answer);
    assertThat(criuRuns()).isEqualTo(1);
  }

  @Test
  void anUnsealedSnapshotPlantedAtTheOriginIsRefusedBeforeCriuAndItsCommandNeverRuns() throws Exception {
    ModelName tag = sealedPush().tag();
    Path marker = tmp.resolve("planted-ran");
    // the attacker copies the node's fields from key.json (in clear) and replaces what the tag points at
    plantUnsealed(tag, nodeFieldsAtTheOrigin(tag), marker);
    for (Optional<SnapshotCipher> configured : List.of(Optional.of(key), Optional.<SnapshotCipher>empty())) {
      Path logs = tmp.resolve("logs-" + configured.isPresent());
      assertThatThrownBy(() -> restore(service("node2", configured, false, Fallback.RECORDED), logs))
          .as("snapshot key configured: " + configured.isPresent())
          .isInstanceOf(SnapshotService.NoSnapshot.class)
          .hasMessageContaining(tag.toString()).hasMessageContaining("not sealed")
          .hasMessageContaining("--allow-unsealed").hasMessageContaining("no command to boot instead");
      assertThat(startedIn(logs)).as("nothing was started").isEmpty();
    }
    assertThat(criuRuns()).as("CRIU never saw the planted images").isZero();
    assertThat(marker).as("the planted command never ran").doesNotExist();
  }

  @Test
  void anUnsealedSnapshotThatDoesNotMatchThisNodeNeverBootsItsPlantedCommand() throws Exception {
    ModelName tag = sealedPush().tag();
    Path marker = tmp.resolve("planted-ran");
    Map<String, String> fields = nodeFieldsAtTheOrigin(tag);
    fields.put(SnapshotKey.GPU_MODEL, "NVIDIA H200");
    plantUnsealed(tag, fields, marker);
    Path logs = tmp.resolve("logs");
    assertThatThrownBy(() -> restore(service("node2", Optional.of(key), false, Fallback.RECORDED), logs))
        .isInstanceOf(SnapshotService.NoSnapshot.class).hasMessageContaining("not sealed")
        .hasMessageContaining("no command to boot instead");
    assertThat(startedIn(logs)).as("nothing was started").isEmpty();
    assertThat(marker).doesNotExist();
    assertThat(criuRuns()).isZero();
  }

  @Test
  void twoSealedImageFilesWithTheirChunkListsSwappedAreRefusedBeforeCriuNamingTheFile() throws Exception {
    ModelName tag = sealedPush().tag();
    ObjectNode manifest = manifestJson(tag);
    List<String> two = largestImages(tag, 2);
    ObjectNode a = entry(manifest, two.get(0));
    ObjectNode b = entry(manifest, two.get(1));
    ObjectNode aWas = a.deepCopy();
    ObjectNode bWas = b.deepCopy();
    for (String field : List.of("size", "chunks", "blocks", "lengths")) { // whole: as an attacker at the origin would
      a.remove(field);
      b.remove(field);
      if (bWas.has(field)) {
        a.set(field, bWas.get(field));
      }
      if (aWas.has(field)) {
        b.set(field, aWas.get(field));
      }
    }
    retag(tag, manifest);
    assertThatThrownBy(() -> restore(service("node2", Optional.of(key), false, Fallback.NONE), null))
        .hasMessageContaining("does not authenticate").satisfies(e -> assertThat(e.getMessage())
            .containsAnyOf(two.get(0), two.get(1)));
    assertThat(criuRuns()).isZero();
    try (Stream<Path> left = Files.list(tmp.resolve("node2").resolve(NAME))) {
      assertThat(left.toList()).as("no half-fetched snapshot is left").isEmpty();
    }
  }

  @Test
  void anImageFilePutBackFromAnOlderPushOfTheSameSnapshotIsRefusedBeforeCriu() throws Exception {
    SnapshotService.Pushed older = sealedPush();
    SnapshotService.Pushed newer = sealedPush();
    assertThat(newer.tag()).isEqualTo(older.tag());
    String file = largestImages(newer.tag(), 1).getFirst();
    ObjectNode manifest = manifestJson(newer.tag());
    ObjectNode was = entry((ObjectNode) JSON.readTree(origin.origin().readAll(
        "manifests/" + older.result().digest().substring("sha256:".length()) + ".json")), file);
    entry(manifest, file).setAll(was);
    retag(newer.tag(), manifest);
    assertThatThrownBy(() -> restore(service("node2", Optional.of(key), false, Fallback.NONE), null))
        .hasMessageContaining(file).hasMessageContaining("does not authenticate");
    assertThat(criuRuns()).isZero();
  }

  @Test
  void aRecordEditedAtTheOriginIsRefusedBeforeCriu() throws Exception {
    ModelName tag = sealedPush().tag();
    ObjectNode manifest = manifestJson(tag);
    ObjectNode record = (ObjectNode) JSON.readTree(readAtOrigin(tag, SnapshotStore.KEY_FILE));
    ((ObjectNode) record.get("key")).put(SnapshotKey.MODEL, "sha256:another-model");
    putFile(manifest, SnapshotStore.KEY_FILE, JSON.writeValueAsBytes(record));
    retag(tag, manifest);
    assertThatThrownBy(() -> restore(service("node2", Optional.of(key), false, Fallback.NONE), null,
        "sha256:another-model"))
        .hasMessageContaining(SnapshotStore.KEY_FILE + " does not authenticate");
    assertThat(criuRuns()).isZero();
  }

  @Test
  void aSealedSnapshotMovedToAnotherNameAtTheOriginIsRefusedBeforeCriu() throws Exception {
    ModelName tag = sealedPush().tag();
    ModelName moved = new ModelName("snapshots/other-server", tag.tag());
    origin.origin().write(moved.tagKey(), ByteBuffer.wrap(origin.origin().readAll(tag.tagKey())));
    assertThatThrownBy(() -> service("node2", Optional.of(key), false, Fallback.NONE).restore(
        new SnapshotService.Restore("other-server", null, true, false, Duration.ofSeconds(60), null),
        SnapshotService.FetchProgress.NONE))
        .hasMessageContaining("names the snapshot " + NAME + ", not other-server");
    assertThat(criuRuns()).isZero();
  }

  @Test
  void anUnsealedSnapshotIsRestoredOnlyWithAllowUnsealed() throws Exception {
    node("node1", Optional.empty(), false).push(NAME, images, 1 << 20, 4, PushProgress.NONE);
    assertThatThrownBy(() -> restore(service("node2", Optional.of(key), false, Fallback.NONE), null))
        .hasMessageContaining("not sealed").hasMessageContaining("--allow-unsealed");
    assertThat(criuRuns()).isZero();

    SnapshotService.Restoring r = restore(service("node3", Optional.of(key), true, Fallback.NONE), null);
    assertThat(r.restored().fromSnapshot()).isTrue();
    assertThat(probe.ask(Duration.ofSeconds(30))).isEqualTo(answer);
  }

  @Test
  void aSealedSnapshotFetchedAheadIsKeptHereSoTheRestoreFetchesNothingAndAnUnsealedOneIsNeverFetched()
      throws Exception {
    sealedPush();
    SnapshotService node2 = service("node2", Optional.of(key), false, Fallback.NONE);
    assertThat(node2.fetchAhead(NAME).fetched()).isTrue();
    assertThat(node2.list()).extracting(SnapshotService.Local::name).containsExactly(NAME);
    assertThat(node2.fetchAhead(NAME).fetched()).as("kept here already: nothing is fetched again").isFalse();
    assertThat(criuRuns()).as("fetching ahead restores nothing").isZero();

    SnapshotService.Restoring r = node2.restore(new SnapshotService.Restore(NAME, null, false, false,
        Duration.ofSeconds(60), tmp.resolve("logs")), SnapshotService.FetchProgress.NONE);
    running.add(r.restored());
    assertThat(r.restored().fromSnapshot()).as(String.valueOf(r.restored().fallbackReason())).isTrue();
    assertThat(r.found().fetched()).isFalse();
    assertThat(probe.ask(Duration.ofSeconds(30))).isEqualTo(answer);

    node("node1", Optional.empty(), false).push("unsealed", images, 1 << 20, 4, PushProgress.NONE);
    assertThatThrownBy(() -> node2.fetchAhead("unsealed")).hasMessageContaining("not sealed");
    assertThat(node2.list()).extracting(SnapshotService.Local::name).containsExactly(NAME);
  }

  @Test
  void withNoFallbackARestoreThatFailsStartsNothing() throws Exception {
    SnapshotStore node = node("node1", Optional.empty(), false);
    Path dump = node.newDumpDirectory(NAME);
    Files.createDirectories(dump);
    try (Stream<Path> files = Files.list(images)) {
      for (Path f : files.filter(f -> !f.getFileName().toString().startsWith("pages-")).toList()) {
        Files.copy(f, dump.resolve(f.getFileName())); // the process's memory is missing
      }
    }
    node.keep(NAME, dump);
    Path logs = tmp.resolve("logs");
    assertThatThrownBy(() -> service("node1", Optional.empty(), false, Fallback.RECORDED).restore(
        new SnapshotService.Restore(NAME, null, false, true, Duration.ofSeconds(60), logs),
        SnapshotService.FetchProgress.NONE))
        .hasMessageContaining("criu restore");
    assertThat(criuRuns()).isEqualTo(1);
    assertThat(startedIn(logs)).as("no server was started, not even for a moment").isEmpty();
  }

  // --- what the tests share ---

  private SnapshotStore node(String dir, Optional<SnapshotCipher> cipher, boolean allowUnsealed) throws IOException {
    return new SnapshotStore(tmp.resolve(dir), origin, cipher, 4, allowUnsealed);
  }

  private SnapshotService.Pushed sealedPush() throws IOException {
    return node("node1", Optional.of(key), false).push(NAME, images, 1 << 20, 4, PushProgress.NONE);
  }

  /**
   * The snapshot service of the node whose snapshots are under {@code dir}, as {@code thaw restore} builds it, on the
   * test's origin and recording CRIU, with {@code key} as its snapshot key (empty: none configured).
   */
  private SnapshotService service(String dir, Optional<SnapshotCipher> key, boolean allowUnsealed,
      Fallback fallback) {
    return SnapshotService.builder(tmp.resolve(dir), "file://" + tmp.resolve("origin"), "test").key(key)
        .parallelism(4).allowUnsealed(allowUnsealed).fallback(fallback).criu(criu).cuda(Optional.empty()).build();
  }

  /** {@code thaw restore NAME --from-origin} on the node {@code snapshots}. */
  private SnapshotService.Restoring restore(SnapshotService node, Path logs) throws IOException {
    return restore(node, logs, null);
  }

  private SnapshotService.Restoring restore(SnapshotService node, Path logs, String model) throws IOException {
    SnapshotService.Restoring r = node.restore(new SnapshotService.Restore(NAME, model, true, false,
        Duration.ofSeconds(60), logs != null ? logs : tmp.resolve("logs")), SnapshotService.FetchProgress.NONE);
    running.add(r.restored());
    return r;
  }

  /** The log files of what a fallback started in {@code logs} (server.err is opened before the command starts). */
  private static List<Path> startedIn(Path logs) throws IOException {
    if (!Files.isDirectory(logs)) {
      return List.of();
    }
    try (Stream<Path> files = Files.list(logs)) {
      return files.toList();
    }
  }

  private long criuRuns() throws IOException {
    return Files.exists(criuRestores) ? Files.readAllLines(criuRestores).size() : 0;
  }

  /** The node fields of the key recorded at the origin for {@code tag}: what anyone who can read it learns. */
  private Map<String, String> nodeFieldsAtTheOrigin(ModelName tag) throws IOException {
    JsonNode key = JSON.readTree(readAtOrigin(tag, SnapshotStore.KEY_FILE)).get("key");
    Map<String, String> fields = new LinkedHashMap<>();
    key.properties().forEach(e -> fields.put(e.getKey(), e.getValue().asText()));
    return fields;
  }

  /**
   * Pushes, as the attacker would with {@code thaw push}, an unsealed snapshot whose command touches {@code marker},
   * and points {@code tag} at it.
   */
  private void plantUnsealed(ModelName tag, Map<String, String> nodeFields, Path marker) throws IOException {
    List<String> command = List.of("/bin/sh", "-c", "touch " + marker + "; sleep 600");
    Map<String, String> fields = new LinkedHashMap<>(nodeFields);
    fields.put(SnapshotKey.COMMAND, String.join("\u0000", command));
    SnapshotKey planted = new SnapshotKey(fields);
    Path staging = tmp.resolve("planted");
    Files.createDirectories(staging.resolve("images"));
    ObjectNode record = JSON.createObjectNode();
    record.put("name", NAME);
    record.set("key", JSON.valueToTree(planted.withCommandDigest().fields()));
    record.put("encrypted", false);
    JSON.writeValue(staging.resolve(SnapshotStore.KEY_FILE).toFile(), record);
    JSON.writeValue(staging.resolve("images").resolve(Snapshots.METADATA).toFile(), new SnapshotMetadata(
        planted.fields(), command, "http://127.0.0.1:" + http + "/v2/health/ready", null, null, List.of(), List.of()));
    byte[] junk = new byte[4096];
    new Random(7).nextBytes(junk);
    Files.write(staging.resolve("images").resolve("pages-1.img"), junk);
    new Pusher(origin.origin(), 1 << 20, 4, PushProgress.NONE).push(staging, tag);
  }

  /** The {@code n} largest image files of the snapshot at {@code tag}, by path, largest first. */
  private List<String> largestImages(ModelName tag, int n) throws IOException {
    return origin.resolve(tag).files().stream().filter(f -> f.path().startsWith("images/"))
        .sorted(java.util.Comparator.comparingLong(FileEntry::size).reversed()).limit(n).map(FileEntry::path)
        .map(p -> p.substring("images/".length())).toList();
  }

  private ObjectNode manifestJson(ModelName tag) throws IOException {
    String digest = origin.digestOf(tag);
    return (ObjectNode) JSON.readTree(origin.origin().readAll("manifests/" + digest.substring("sha256:".length())
        + ".json"));
  }

  /** The manifest entry of {@code path}, or of {@code images/path}. */
  private static ObjectNode entry(ObjectNode manifest, String path) {
    for (JsonNode e : manifest.get("entries")) {
      String p = e.get("path").asText();
      if (p.equals(path) || p.equals("images/" + path)) {
        return (ObjectNode) e;
      }
    }
    throw new AssertionError("no entry " + path + " in " + manifest);
  }

  /** Writes {@code manifest} at the origin and points {@code tag} at it. */
  private void retag(ModelName tag, ObjectNode manifest) throws IOException {
    byte[] bytes = JSON.writeValueAsBytes(manifest);
    String hex = Hashes.sha256Hex(bytes);
    origin.origin().write("manifests/" + hex + ".json", ByteBuffer.wrap(bytes));
    origin.origin().write(tag.tagKey(), ByteBuffer.wrap(("sha256:" + hex + "\n").getBytes(StandardCharsets.UTF_8)));
  }

  private byte[] readAtOrigin(ModelName tag, String path) throws IOException {
    FileEntry f = (FileEntry) origin.resolve(tag).entry(path);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (ChunkRef c : f.chunks()) {
      out.write(origin.origin().readAll(c.objectKey()));
    }
    return out.toByteArray();
  }

  /** Stores {@code content} as one chunk and makes {@code path} of {@code manifest} that chunk. */
  private void putFile(ObjectNode manifest, String path, byte[] content) throws IOException {
    String hex = Hashes.sha256Hex(content);
    byte[] hash = HexFormat.of().parseHex(hex);
    origin.origin().write(ChunkRef.objectKeyForHash(hex), ByteBuffer.wrap(content));
    ObjectNode e = entry(manifest, path);
    e.put("size", content.length);
    e.put("chunks", Base64.getEncoder().encodeToString(hash));
    ArrayNode lengths = e.putArray("lengths");
    lengths.addArray().add(content.length).add(1);
    if (manifest.has("blockSize")) { // block hashes that match too, as an attacker at the origin would write them
      int blockSize = manifest.get("blockSize").intValue();
      ByteArrayOutputStream blocks = new ByteArrayOutputStream();
      for (int at = 0; at < content.length; at += blockSize) {
        byte[] block = java.util.Arrays.copyOfRange(content, at, Math.min(content.length, at + blockSize));
        blocks.writeBytes(HexFormat.of().parseHex(Hashes.sha256Hex(block)));
      }
      e.put("blocks", Base64.getEncoder().encodeToString(blocks.toByteArray()));
    }
  }

  private static byte[] randomKey(int seed) {
    byte[] k = new byte[32];
    new Random(seed).nextBytes(k);
    return k;
  }
}
