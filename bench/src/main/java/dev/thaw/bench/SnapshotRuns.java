package dev.thaw.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.PidNamespaceProcess;
import dev.thaw.checkpoint.Probe;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.testkit.FreePorts;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

/**
 * The snapshot paths of a cold start, each timed from the exec of its first command to the first correct answer:
 * ort-server booted under {@code thaw run}'s PID namespace, then snapshotted warm with {@code thaw checkpoint}
 * (images pushed, sealed, to the origin), then brought back with {@code thaw restore} from images on local disk and,
 * as a new node would (an empty snapshot directory), from the origin. The page cache is dropped before
 * each run. Used by {@code thaw bench checkpoint} and by the demo's restore rows.
 *
 * <p>The server reads its model from a local directory, or, as a node serves it, from a Thaw mount ({@link OnMount}).
 * On a mount, every run mounts the model afresh (a new {@code thaw mount} process, an empty chunk cache): a boot and a
 * restore from local images start that mount first and are timed from its exec; a restore on a new node finds no
 * mount and {@code thaw restore} mounts the model itself. The checkpoint's own mount records the model's access
 * profile (the first load of a model records it), which every later mount prefetches.
 */
final class SnapshotRuns implements AutoCloseable {
  private static final String NAME = "bench-ort-server";
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long TIMEOUT_MS = 600_000;

  private final Path work;
  private final Path repo;
  private final List<String> serverCommand;
  private final List<String> thawCommand;
  private final Map<String, String> env;
  private final PrintStream log;
  private final InferenceClient client;
  private final float[] input;
  private final float[] expected;
  private final Path keyFile;
  private final Path localSnapshots;
  private final java.util.function.LongSupplier originBytes;
  private final OnMount onMount;
  /**
   * The snapshot's name, new for each instance: a restore from the origin takes the first snapshot of its name that
   * matches the node, and the origin keeps those of earlier runs (the demo's work directory is reused).
   */
  private final String name;
  private final List<Long> servers = new ArrayList<>();
  private int httpPort;
  private long imageBytes;
  private double dumpS;
  private JsonNode pushed;

  /**
   * The model on a Thaw mount: pushed as {@code model} to {@code origin}, mounted at {@code mountPoint}. A restore that
   * mounts the model itself does so from its own {@code --origin}: push the snapshot to the same store.
   *
   * @param origin the origin the mounts read (the throttled one, as a node reads a cloud store)
   */
  record OnMount(String model, String origin, Path mountPoint) {}

  /**
   * @param serverCommand ort-server's command line, without repository and ports
   * @param thawCommand how to run the thaw CLI
   * @param env for the thaw CLI (origin credentials)
   * @param originBytes what the throttled origin has sent so far, to count each run's share (null: not counted)
   * @param onMount the model's Thaw mount; null: the server reads {@code repo} on local disk
   */
  SnapshotRuns(Path work, Path repo, List<String> serverCommand, List<String> thawCommand, Map<String, String> env,
      PrintStream log, InferenceClient client, float[] input, float[] expected,
      java.util.function.LongSupplier originBytes, OnMount onMount) throws IOException {
    this.originBytes = originBytes == null ? () -> 0 : originBytes;
    this.onMount = onMount;
    this.name = NAME + "-" + work.getFileName() + "-" + Long.toString(System.currentTimeMillis(), 36);
    this.work = work;
    this.repo = repo;
    this.serverCommand = serverCommand;
    this.thawCommand = thawCommand;
    this.env = env;
    this.log = log;
    this.client = client;
    this.input = input;
    this.expected = expected;
    Files.createDirectories(work);
    this.keyFile = work.resolve("snapshot.key");
    if (!Files.exists(keyFile)) {
      byte[] key = new byte[32];
      new java.security.SecureRandom().nextBytes(key);
      Files.writeString(Files.createFile(keyFile, PosixFilePermissions.asFileAttribute(
          PosixFilePermissions.fromString("rw-------"))), java.util.Base64.getEncoder().encodeToString(key) + "\n");
    }
    this.localSnapshots = work.resolve("snapshots");
  }

  /** The server's command on the repository, as {@code thaw run} starts it and the snapshot records it. */
  List<String> serverArgs(int http, int grpc) {
    List<String> cmd = new ArrayList<>(serverCommand);
    // PID 1 of its namespace: its perf-data file would be /tmp/hsperfdata_USER/1 on every node, so none is kept
    cmd.add(1, "-XX:-UsePerfData");
    Path repository = onMount == null ? repo : onMount.mountPoint();
    cmd.addAll(List.of("--model-repository", repository.toString(), "--http-port", Integer.toString(http), "--grpc-port",
        Integer.toString(grpc), "--allow-metrics=false", "--warmup"));
    return cmd;
  }

  /**
   * A timed run: events in ms from the exec, bytes from the origin, and how it was done.
   *
   * @param cpuSeconds CPU seconds of each process of the run until its first answer, the emulated origin's included
   * @param fileBackedBytes what the (restored) server had resident from mapped files at its first answer: bytes it
   *     read from disk besides the images
   */
  record Timed(Map<String, Double> events, long bytesFetched, String how, Map<String, Double> cpuSeconds,
      long fileBackedBytes) {
    double firstInferenceS() {
      return events.get("first_inference") / 1000;
    }

    double cpuTotal() {
      return cpuSeconds.values().stream().mapToDouble(Double::doubleValue).sum();
    }
  }

  /**
   * Boots the server in its own PID namespace with the page cache dropped (on a fresh mount of the model, when on a
   * mount); the run ends with its first answer.
   */
  Timed boot() throws Exception {
    int[] ports = FreePorts.pick(2);
    Machine.dropPageCache(log);
    Map<String, Double> ev = new LinkedHashMap<>();
    Map<String, Double> cpu = new LinkedHashMap<>();
    long before = originBytes.getAsLong();
    ColdStartDemo.Cpu cpuBefore = ColdStartDemo.Cpu.now();
    long t0 = System.nanoTime();
    ev.put("exec", 0.0);
    try (MountProcess mount = onMount == null ? null : mountModel("boot", false)) {
      if (mount != null) {
        ev.put("mounted", ms(t0));
      }
      try (PidNamespaceProcess p = PidNamespaceProcess.start(serverArgs(ports[0], ports[1]), work.resolve("boot.out"),
          work.resolve("boot.err"))) {
        Probe.awaitReady(readyUrl(ports[0]), Duration.ofMillis(TIMEOUT_MS), p.pid());
        ev.put("ready", ms(t0));
        inferChecked(ports[0], "boot");
        ev.put("first_inference", ms(t0));
        cpu.put("ort_server", MountProcess.cpuSeconds(p.pid()));
        if (mount != null) {
          cpu.put("thaw_mount", mount.cpuSeconds());
        }
        // this JVM: S3Proxy and the throttling proxy (the emulated cloud) and the inference client
        cpu.put("origin_s3proxy_and_throttle", ColdStartDemo.Cpu.now().self() - cpuBefore.self());
      }
      return new Timed(ev, originBytes.getAsLong() - before, onMount == null
          ? "ort-server under a new PID namespace, the model on local disk"
          : "thaw mount (a fresh cache), then ort-server under a new PID namespace on the mount", cpu, 0);
    } finally {
      deleteCache("boot");
    }
  }

  /**
   * Boots the server, warms it, and takes its snapshot with {@code thaw checkpoint}, pushing the sealed images to
   * {@code pushOrigin}. Records the dump time and the image bytes.
   */
  void checkpoint(String pushOrigin) throws Exception {
    int[] ports = FreePorts.pick(2);
    httpPort = ports[0];
    MountProcess mount = onMount == null ? null : mountModel("checkpoint", true);
    PidNamespaceProcess server = null;
    try {
      server = PidNamespaceProcess.start(serverArgs(ports[0], ports[1]), work.resolve("server.out"),
          work.resolve("server.err"));
      Probe.awaitReady(readyUrl(httpPort), Duration.ofMillis(TIMEOUT_MS), server.pid());
      inferChecked(httpPort, "warm-up");
      Path probe = work.resolve("probe.json");
      Files.writeString(probe, probeJson(httpPort));
      ModelGenerator.deleteTree(localSnapshots);
      JsonNode r = thaw("checkpoint", List.of("checkpoint", "--pid", Long.toString(server.pid()), "--name", name,
          "--probe", probe.toString(), "--origin", pushOrigin, "--snapshots",
          localSnapshots.toString(), "--key-file", keyFile.toString(), "--json"));
      imageBytes = r.get("image_bytes").asLong();
      dumpS = r.get("dump_s").asDouble();
      pushed = r;
      log.printf(Locale.ROOT, "snapshot: dumped in %.2f s, %s of images, pushed sealed in %.2f s%n", dumpS,
          ColdStartDemo.human(imageBytes), r.get("push_s").asDouble());
    } finally {
      if (server != null) {
        server.close();
      }
      if (mount != null) {
        mount.close(); // the node's mount goes, saving the profile it recorded; each restore mounts the model afresh
        deleteCache("checkpoint");
      }
    }
    Path mountLog = work.resolve("thaw-mount-checkpoint.log");
    if (mount != null && !Files.readString(mountLog).contains("saved access profile")) {
      throw new IOException("the checkpointed server's mount saved no access profile, so later mounts would prefetch"
          + " nothing: see " + mountLog);
    }
  }

  long imageBytes() {
    return imageBytes;
  }

  double dumpS() {
    return dumpS;
  }

  /**
   * {@code thaw restore} from the images this node kept, page cache dropped; on a mount, after a fresh mount of the
   * model at the same path (a new process, an empty cache), timed from its exec.
   */
  Timed restoreLocal(String origin) throws Exception {
    return restore("local", List.of("--origin", origin, "--snapshots", localSnapshots.toString()), true);
  }

  /**
   * As {@link #restoreLocal} on a mount, the fresh mount started with {@code --prefetch off}: what prefetching the
   * model's access profile costs (when the images hold the weights) or saves (when the server maps them).
   */
  Timed restoreLocalWithoutPrefetch(String origin) throws Exception {
    if (onMount == null) {
      throw new IllegalStateException("only a server on a mount has a mount to prefetch");
    }
    return restore("local-no-prefetch", List.of("--origin", origin, "--snapshots", localSnapshots.toString()), false);
  }

  /**
   * {@code thaw restore} as a new node: an empty snapshot directory, every image byte from {@code origin}; on a
   * mount, no mount of the model either: the restore mounts it itself, from {@code origin}, into an empty cache.
   */
  Timed restoreFromOrigin(String origin) throws Exception {
    Path freshSnapshots = work.resolve("node2-snapshots");
    ModelGenerator.deleteTree(freshSnapshots);
    try {
      return restore("origin", List.of("--origin", origin, "--snapshots", freshSnapshots.toString(), "--from-origin"),
          true);
    } finally {
      ModelGenerator.deleteTree(freshSnapshots);
    }
  }

  private Timed restore(String key, List<String> where, boolean prefetch) throws Exception {
    boolean restoreMounts = onMount != null && where.contains("--from-origin");
    Machine.dropPageCache(log);
    long before = originBytes.getAsLong();
    List<String> args = new ArrayList<>(List.of("restore", name, "--key-file", keyFile.toString(), "--no-fallback",
        "--log-dir", work.toString(), "--json"));
    args.addAll(where);
    if (restoreMounts) {
      args.addAll(List.of("--mount-cache", cache("restore-" + key).toString()));
    }
    Map<String, Double> ev = new LinkedHashMap<>();
    Map<String, Double> cpu = new LinkedHashMap<>();
    ColdStartDemo.Cpu cpuBefore = ColdStartDemo.Cpu.now();
    long t0 = System.nanoTime();
    ev.put("exec", 0.0);
    MountProcess mount = null;
    long mountPid = -1;
    try {
      if (onMount != null && !restoreMounts) {
        mount = mountModel("restore-" + key, false, prefetch);
        mountPid = mount.pid();
        ev.put("mounted", ms(t0));
      }
      JsonNode r = thaw("restore-" + key, args);
      long pid = r.get("pid").asLong();
      servers.add(pid);
      if (r.get("fetch_s").asDouble() > 0) {
        ev.put("images_fetched", r.get("fetch_s").asDouble() * 1000);
      }
      if (restoreMounts) {
        mountPid = restoreMountPid(key);
      }
      ev.put("restored_and_verified", ms(t0));
      inferChecked(httpPort, "restore-" + key);
      ev.put("first_inference", ms(t0));
      ColdStartDemo.Cpu now = ColdStartDemo.Cpu.now();
      cpu.put("thaw_restore", now.children() - cpuBefore.children());
      cpu.put("ort_server", MountProcess.cpuSeconds(pid));
      if (mountPid > 0) {
        cpu.put("thaw_mount", MountProcess.cpuSeconds(mountPid));
      }
      // this JVM: S3Proxy and the throttling proxy (the emulated cloud) and the inference client
      cpu.put("origin_s3proxy_and_throttle", now.self() - cpuBefore.self());
      long fileBytes = fileBackedResidentBytes(pid);
      long bytes = originBytes.getAsLong() - before;
      kill(pid);
      String how = how(where.contains("--from-origin"), restoreMounts);
      return new Timed(ev, bytes, prefetch ? how : how.replace("thaw mount of the model (a fresh cache)",
          "thaw mount of the model (a fresh cache, --prefetch off)"), cpu, fileBytes);
    } finally {
      if (mount != null) {
        mount.close();
      } else if (restoreMounts) {
        unmountRestored();
      }
      deleteCache("restore-" + key);
    }
  }

  private String how(boolean fromOrigin, boolean restoreMounts) {
    String restore = fromOrigin
        ? "thaw restore --from-origin on a new node (an empty snapshot directory)"
        : "thaw restore from the images this node kept at checkpoint";
    if (onMount == null) {
      return restore + ", then the first answer";
    }
    return restoreMounts
        ? restore + ", mounting the model itself (thaw mount, an empty cache), then the first answer"
        : "thaw mount of the model (a fresh cache) at the server's path, then " + restore + ", then the first answer";
  }

  /** {@code thaw mount} of the model at the mount point, with an empty cache, started and waited for. */
  private MountProcess mountModel(String key, boolean recordProfile) throws IOException {
    return mountModel(key, recordProfile, true);
  }

  private MountProcess mountModel(String key, boolean recordProfile, boolean prefetch) throws IOException {
    ModelGenerator.deleteTree(cache(key));
    List<String> cmd = new ArrayList<>(thawCommand);
    cmd.addAll(List.of("mount", onMount.model(), onMount.mountPoint().toString(), "--origin", onMount.origin(),
        "--cache", cache(key).toString(), "--cache-size", "16g"));
    if (recordProfile) {
      cmd.add("--record-profile");
    }
    if (!prefetch) {
      cmd.addAll(List.of("--prefetch", "off"));
    }
    MountProcess m = MountProcess.start("thaw mount", cmd, env, java.util.Set.of(), onMount.mountPoint(),
        work.resolve("thaw-mount-" + key + ".log"));
    try {
      m.awaitVisible(onMount.mountPoint().resolve(ColdStartDemo.MODEL).resolve("config.pbtxt"), TIMEOUT_MS);
    } catch (IOException e) {
      m.close();
      throw e;
    }
    return m;
  }

  private Path cache(String key) {
    return work.resolve("cache-" + key);
  }

  private void deleteCache(String key) throws IOException {
    if (onMount != null) {
      ModelGenerator.deleteTree(cache(key));
    }
  }

  /** The PID of the {@code thaw mount} a restore started, from the line it printed. */
  private long restoreMountPid(String key) throws IOException {
    Path err = work.resolve("thaw-restore-" + key + ".err");
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\(thaw mount, process (\\d+),").matcher(
        Files.readString(err));
    if (!m.find()) {
      throw new IOException("thaw restore did not say it mounted the model at " + onMount.mountPoint()
          + " (was a mount already there?): see " + err);
    }
    return Long.parseLong(m.group(1));
  }

  /** Ends the mount a restore started ({@code thaw unmount}: it waits for the mount's process to exit). */
  private void unmountRestored() throws IOException, InterruptedException {
    if (dev.thaw.fuse.MountTable.find(onMount.mountPoint()).isPresent()) {
      thaw("unmount", List.of("unmount", onMount.mountPoint().toString()));
    }
  }

  /**
   * Seconds to read {@code bytes} from local disk with the page cache dropped, at the rate measured now by reading
   * the snapshot's image files (4 readers, as a restore that reads ahead would).
   */
  double localReadFloorS(long bytes) throws Exception {
    List<Path> files;
    try (Stream<Path> s = Files.walk(localSnapshots)) {
      files = s.filter(Files::isRegularFile).toList();
    }
    Machine.dropPageCache(log);
    long t0 = System.nanoTime();
    long total = 0;
    try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
      List<Future<Long>> reads = new ArrayList<>();
      for (Path f : files) {
        reads.add(pool.submit(() -> StoreBench.readFile(f, ByteBuffer.allocateDirect(1 << 20))));
      }
      for (Future<Long> f : reads) {
        total += f.get();
      }
    }
    double s = (System.nanoTime() - t0) / 1e9;
    double rate = total / s;
    log.printf(Locale.ROOT, "snapshot: local disk, cold, 4 readers: %s in %.2f s (%.2f GB/s)%n",
        ColdStartDemo.human(total), s, rate / 1e9);
    return bytes / rate;
  }

  /**
   * The best rate at which plain parallel HTTP downloads (curl, 16 and 32 streams of whole chunk objects) get the
   * snapshot's pushed bytes from the origin, in bytes per second.
   */
  double bestDownloadRate(String originUri, java.util.function.Function<String, String> objectUrl) throws Exception {
    List<CurlDownload.Get> gets = new ArrayList<>();
    long bytes = 0;
    try (Origin o = Origins.open(originUri)) {
      Manifest m = new ModelStore(o).resolve(ModelName.parse(pushed.get("tag").asText()));
      for (FileEntry f : m.files()) {
        for (ChunkRef c : f.chunks()) {
          gets.add(CurlDownload.Get.whole(objectUrl.apply(c.objectKey())));
          bytes += c.length();
        }
      }
    }
    double best = 0;
    for (int streams : new int[] {16, 32}) {
      Machine.dropPageCache(log);
      long t0 = System.nanoTime();
      CurlDownload.run(gets, streams, work.resolve("curl"), bytes, log);
      double s = (System.nanoTime() - t0) / 1e9;
      log.printf(Locale.ROOT, "snapshot: the images alone by curl, %d streams: %.2f s (%.2f GB/s)%n", streams, s,
          bytes / 1e9 / s);
      best = Math.max(best, bytes / s);
    }
    return best;
  }

  /** The bytes of the pushed snapshot (sealed images and key file). */
  long pushedBytes(String originUri) throws IOException {
    try (Origin o = Origins.open(originUri)) {
      return new ModelStore(o).resolve(ModelName.parse(pushed.get("tag").asText())).totalBytes();
    }
  }

  private JsonNode thaw(String key, List<String> args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(thawCommand);
    cmd.addAll(args);
    Path err = work.resolve("thaw-" + key + ".err");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(err.toFile());
    pb.environment().putAll(env);
    Process p = pb.start();
    p.getOutputStream().close();
    byte[] out = p.getInputStream().readAllBytes();
    if (p.waitFor() != 0) {
      throw new IOException("thaw " + String.join(" ", args) + " failed (exit " + p.exitValue() + "): "
          + Files.readString(err).strip());
    }
    return JSON.readTree(out);
  }

  private void inferChecked(int port, String run) throws IOException, InterruptedException {
    float[] got = client.infer(port, ColdStartDemo.MODEL, MlpGenerator.INPUT, MlpGenerator.OUTPUT, input, 1);
    if (!InferenceClient.matches(got, expected)) {
      throw new IOException("ort-server answered wrongly in run " + run + ": got " + java.util.Arrays.toString(got));
    }
  }

  private String probeJson(int port) throws IOException {
    ObjectNode p = JSON.createObjectNode();
    p.put("url", "http://127.0.0.1:" + port + "/v2/models/" + ColdStartDemo.MODEL + "/infer");
    ObjectNode in = p.putObject("request").putArray("inputs").addObject();
    in.put("name", MlpGenerator.INPUT).put("datatype", "FP32");
    in.putArray("shape").add(1).add(input.length);
    ArrayNode data = in.putArray("data");
    for (float f : input) {
      data.add(f);
    }
    return JSON.writeValueAsString(p);
  }

  private static String readyUrl(int port) {
    return "http://127.0.0.1:" + port + "/v2/health/ready";
  }

  /** Resident bytes of a process backed by files (its mapped libraries, jars and any mapped weights). */
  static long fileBackedResidentBytes(long pid) {
    try {
      long rss = 0;
      long anon = 0;
      for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "smaps_rollup"), StandardCharsets.UTF_8)) {
        String[] f = line.split("\\s+");
        if (f[0].equals("Rss:")) {
          rss = Long.parseLong(f[1]) * 1024;
        } else if (f[0].equals("Anonymous:")) {
          anon = Long.parseLong(f[1]) * 1024;
        }
      }
      return Math.max(0, rss - anon);
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  private static void kill(long pid) {
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    PidNamespaceProcess.awaitGone(pid, 10_000);
  }

  private static double ms(long t0) {
    return (System.nanoTime() - t0) / 1e6;
  }

  @Override
  public void close() {
    for (long pid : servers) {
      kill(pid);
    }
  }
}
