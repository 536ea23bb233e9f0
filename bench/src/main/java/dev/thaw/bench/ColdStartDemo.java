package dev.thaw.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.store.ModelName;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import dev.thaw.testkit.ThrottlingProxy;
import dev.thaw.testkit.Tools;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.domain.BlobMetadata;

/**
 * Thaw's main demo ({@code thaw demo}): time to the first correct inference of a real server (the example
 * ONNX Runtime server, {@code examples/ort-server}) starting cold on a generated model, four ways:
 * <ol>
 *   <li>download everything with a parallel downloader, then boot the server (what people do today);
 *   <li>boot the server on a Thaw lazy mount, cold cache: mounted through a sidecar that is already up
 *       ({@code POST /v1/mounts}, as a deployment mounts), and with the {@code thaw mount} command from its exec
 *       (which also records the access profile);
 *   <li>the same two, prefetching that profile;
 *   <li>boot the server with the model already on local disk (the floor without snapshots);
 *   <li>restore the server's snapshot (taken warm, on the model on local disk) on a new node, images from the origin,
 *       and from the images on local disk;
 *   <li>the same two with the server's model on a Thaw mount, as a node serves it (the snapshot taken of the server
 *       on a mount of the pushed model): on a new node {@code thaw restore} mounts the model itself; with local images
 *       a fresh mount of it comes first (see {@link SnapshotRuns}).
 * </ol>
 * The origin is S3Proxy behind the same per-connection throttle as the store bench ({@link ThrottlingProxy}, 100 MB/s
 * per connection): an emulated cloud object store, nothing to configure. Each run is timed from the exec of its first
 * command to the first correct answer; the page cache is dropped before each. The proxy counts the bytes each run
 * fetched and stamps its first byte.
 */
public final class ColdStartDemo {
  private ColdStartDemo() {}

  static final String MODEL = "mlp";
  static final ModelName NAME = ModelName.parse("demo/mlp:v1");
  static final String RAW_PREFIX = "raw/";
  static final String STORE_PREFIX = "store/";
  static final String SNAPSHOT_PREFIX = "snapshots/";
  static final long TIMEOUT_MS = 600_000;
  private static final int[] CURL_STREAMS = {8, 16, 32};
  private static final int RANGE = 8 << 20;
  /** S3Proxy runs without authentication, but S3 clients insist on signing with some credentials. */
  private static final Map<String, String> CREDENTIALS = Map.of("AWS_ACCESS_KEY_ID", "thaw-demo",
      "AWS_SECRET_ACCESS_KEY", "thaw-demo-secret", "AWS_REGION", "us-east-1", "AWS_DEFAULT_REGION", "us-east-1");

  /**
   * @param modelBytes weight bytes of the generated model
   * @param seed the model generator's seed
   * @param workDir model, S3Proxy's directory, caches, logs and the timeline (model and objects kept between runs)
   * @param thawCommand the command that runs the thaw CLI; null: this JVM's command line
   * @param serverCommand the command that runs ort-server; null: this JVM's java and class path
   */
  public record Options(long modelBytes, long seed, Path workDir, List<String> thawCommand, List<String> serverCommand) {
    public static Options defaults() {
      return new Options(1L << 30, 42, Path.of("target", "demo"), null, null);
    }

    public Options {
      if (modelBytes < (1 << 20)) {
        throw new IllegalArgumentException("the model must be at least 1 MiB, not " + modelBytes + " bytes");
      }
    }
  }

  /** The summary ({@code --json} keys first), every detail, and where the timeline was written. */
  public record Result(Map<String, Object> summary, String table, Path timelineJson, Path timelineHtml) {
    public String toJson() {
      try {
        return new ObjectMapper().writeValueAsString(summary);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new IllegalStateException("demo result is not serialisable", e);
      }
    }
  }

  /** One timed run: its events in milliseconds from the exec of its first command. */
  record RunTimeline(String key, String label, Map<String, Double> events, long bytesFetched, String detail,
      Map<String, Double> cpuSeconds, long blockedReads) {
    double firstInferenceS() {
      return events.get("first_inference") / 1000.0;
    }

    /** CPU seconds of every process of the run (and of the emulated origin) until the first answer. */
    double cpuTotal() {
      return cpuSeconds.entrySet().stream().filter(e -> !e.getKey().equals("wall_s")
          && !e.getKey().equals("machine_busy_of_capacity")).mapToDouble(Map.Entry::getValue).sum();
    }
  }

  /** A downloader that writes whole files into a directory, as people fetch a model before serving it. */
  record Downloader(String name, List<String> command, Map<String, String> env, Set<String> unset) {}

  public static Result run(Options o, PrintStream log) throws Exception {
    Path work = o.workDir().toAbsolutePath();
    Files.createDirectories(work);
    Tools.require("curl", "curl", log);
    Tools.require("rclone", "rclone", log);
    Tools.require("fusermount3", "fuse3", log);
    Path repo = ensureModel(work, o, log);
    MlpSpec spec = MlpGenerator.readSpec(repo.resolve(MODEL));
    float[] input = spec.sampleInput(1);
    float[] expected = spec.reference(input, 1);
    long modelBytes = treeBytes(repo);

    Path runs = work.resolve("runs");
    Path logs = work.resolve("logs");
    ModelGenerator.deleteTree(runs);
    ModelGenerator.deleteTree(logs);
    Files.createDirectories(runs);
    Path mnt = work.resolve("mnt");
    MountProcess.clear(mnt);

    InferenceClient client = new InferenceClient();
    client.warmUp(FreePorts.pick(1)[0]);
    Map<String, Object> downloads = new LinkedHashMap<>();
    List<RunTimeline> timelines = new ArrayList<>();
    Map<String, Object> snapshotFacts = new LinkedHashMap<>();
    boolean dropped;
    String rate = String.format(Locale.ROOT, "%.0f MB/s per connection", Throttle.RATE_BYTES / 1e6);
    Demo d;
    try (S3ProxyServer s3 = S3ProxyServer.start(work.resolve("s3"))) {
      importRaw(s3, repo, log);
      push(s3, repo, log);
      try (ThrottlingProxy proxy = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", s3.port()), Throttle.RATE_BYTES,
          Throttle.BURST_BYTES)) {
        log.printf(Locale.ROOT, "demo: the origin is S3Proxy behind a throttle of %s (burst %d KiB), an emulated cloud"
            + " object store%n", rate, Throttle.BURST_BYTES >> 10);
        d = new Demo(o, log, work, repo, modelBytes, runs, logs, mnt, s3, proxy, client, input, expected);
        dropped = Machine.dropPageCache(log);
        if (!dropped) {
          log.println("demo: the page cache cannot be dropped (not root), so every run after the first may read the"
              + " model from memory; run as root for fair cold starts");
        }
        // the model's bytes alone, by every parallel downloader at hand; the fastest one that writes whole files
        // is the one run 1 uses
        Downloader best = null;
        double bestFilesS = Double.MAX_VALUE;
        for (Downloader dl : d.downloaders()) {
          double s = d.timeDownload(dl);
          downloads.put(dl.name(), Map.of("seconds", round(s), "gbps", round(modelBytes / 1e9 / s)));
          if (s < bestFilesS) {
            bestFilesS = s;
            best = dl;
          }
        }
        for (int streams : CURL_STREAMS) {
          double s = d.timeCurlRanges(streams);
          downloads.put("curl, " + streams + " streams of 8 MiB ranges (parts, not files)",
              Map.of("seconds", round(s), "gbps", round(modelBytes / 1e9 / s)));
        }
        timelines.add(d.downloadThenBoot(best));
        // the lazy rows as a deployment makes them, through a sidecar that is already up; and with the thaw mount
        // command, from its exec (its first mount also records the profile the profile rows replay)
        d.warmSidecarJvm();
        timelines.add(d.lazyThroughSidecar("lazy", "lazy mount via sidecar, cold cache", "off"));
        timelines.add(d.lazy("lazy_cli", "lazy mount (thaw mount), cold, records profile", true));
        timelines.add(d.lazyThroughSidecar("lazy_profile", "lazy mount + profile via sidecar, cold cache", "auto"));
        timelines.add(d.lazy("lazy_profile_cli", "lazy mount + profile (thaw mount), cold cache", false));
        timelines.add(d.localDiskBoot());
        // the server snapshotted warm (images pushed sealed to the same origin), then restored instead of booted
        try (SnapshotRuns snap = new SnapshotRuns(work.resolve("snapshot"), repo, serverCommand(o),
            MountBench.thawCommand(o.thawCommand()), CREDENTIALS, log, client, input, expected, proxy::bytesToClients,
            null)) {
          snap.checkpoint(s3.originUri(SNAPSHOT_PREFIX));
          snapshotFacts.put("dump_s", round(snap.dumpS()));
          snapshotFacts.put("image_bytes", snap.imageBytes());
          timelines.add(d.finish(snapshotRow("restore_origin", "restore, images from the origin",
              snap.restoreFromOrigin(s3.originUri(SNAPSHOT_PREFIX, proxy.port())))));
          timelines.add(d.finish(snapshotRow("restore_local", "restore, images on local disk",
              snap.restoreLocal(s3.originUri(SNAPSHOT_PREFIX)))));
        }
        // the deployment shape: the server reads the model pushed above through a Thaw mount; its snapshot goes to
        // the model's store, where a restore that mounts the model itself finds both
        SnapshotRuns.OnMount onMount = new SnapshotRuns.OnMount(NAME.toString(),
            s3.originUri(STORE_PREFIX, proxy.port()), work.resolve("snapshot-mnt"));
        try (SnapshotRuns snap = new SnapshotRuns(work.resolve("snapshot-mount"), repo, serverCommand(o),
            MountBench.thawCommand(o.thawCommand()), CREDENTIALS, log, client, input, expected, proxy::bytesToClients,
            onMount)) {
          snap.checkpoint(s3.originUri(STORE_PREFIX));
          snapshotFacts.put("on_mount", Map.of("dump_s", round(snap.dumpS()), "image_bytes", snap.imageBytes()));
          timelines.add(d.finish(snapshotRow("restore_origin_mount", "restore on a Thaw mount, images from the origin",
              snap.restoreFromOrigin(s3.originUri(STORE_PREFIX, proxy.port())))));
          timelines.add(d.finish(snapshotRow("restore_local_mount", "restore on a Thaw mount, images on local disk",
              snap.restoreLocal(s3.originUri(STORE_PREFIX)))));
        }
      }
    } finally {
      MountProcess.clear(mnt);
      ModelGenerator.deleteTree(runs);
    }
    double bestDownloadS = downloads.values().stream()
        .mapToDouble(v -> ((Number) ((Map<?, ?>) v).get("seconds")).doubleValue()).min().orElseThrow();

    Map<String, Object> summary = new LinkedHashMap<>();
    Map<String, RunTimeline> byKey = new LinkedHashMap<>();
    timelines.forEach(t -> byKey.put(t.key(), t));
    summary.put("download_then_boot_s", round(byKey.get("download_then_boot").firstInferenceS()));
    summary.put("lazy_s", round(byKey.get("lazy").firstInferenceS()));
    summary.put("lazy_profile_s", round(byKey.get("lazy_profile").firstInferenceS()));
    summary.put("lazy_cli_s", round(byKey.get("lazy_cli").firstInferenceS()));
    summary.put("lazy_profile_cli_s", round(byKey.get("lazy_profile_cli").firstInferenceS()));
    summary.put("local_disk_boot_s", round(byKey.get("local_disk_boot").firstInferenceS()));
    summary.put("restore_origin_s", round(byKey.get("restore_origin").firstInferenceS()));
    summary.put("restore_local_s", round(byKey.get("restore_local").firstInferenceS()));
    summary.put("restore_origin_mount_s", round(byKey.get("restore_origin_mount").firstInferenceS()));
    summary.put("restore_local_mount_s", round(byKey.get("restore_local_mount").firstInferenceS()));
    summary.put("best_parallel_download_s", round(bestDownloadS));
    summary.put("snapshot", snapshotFacts);
    summary.put("model_bytes", modelBytes);
    double goal = 1.2 * Math.max(bestDownloadS, byKey.get("local_disk_boot").firstInferenceS());
    summary.put("goal_lazy_profile_s", round(goal));
    double downloadThenBoot = byKey.get("download_then_boot").firstInferenceS();
    summary.put("goal_lazy_profile_vs_download_then_boot", 0.7);
    summary.put("lazy_profile_vs_download_then_boot", round(byKey.get("lazy_profile").firstInferenceS() / downloadThenBoot));
    summary.put("goal_met", byKey.get("lazy_profile").firstInferenceS() <= goal
        && byKey.get("lazy_profile").firstInferenceS() <= 0.7 * downloadThenBoot);
    Map<String, Object> speedups = new LinkedHashMap<>();
    double baseline = byKey.get("download_then_boot").firstInferenceS();
    for (RunTimeline t : timelines) {
      speedups.put(t.key(), round(baseline / t.firstInferenceS()));
    }
    summary.put("speedup_vs_download_then_boot", speedups);
    Map<String, Object> cpuTotals = new LinkedHashMap<>();
    timelines.forEach(t -> cpuTotals.put(t.key(), round(t.cpuTotal())));
    summary.put("cpu_s_at_first_inference", cpuTotals);
    summary.put("cores", Machine.nproc());
    Map<String, Object> fetched = new LinkedHashMap<>();
    timelines.forEach(t -> fetched.put(t.key(), t.bytesFetched()));
    summary.put("bytes_fetched_at_first_inference", fetched);
    summary.put("origin", "S3Proxy 3.0.0 behind a per-connection throttle of " + rate);
    summary.put("page_cache_dropped", dropped);
    summary.put("downloads", downloads);
    summary.put("model", Map.of("name", NAME.toString(), "spec", spec.toJson(), "repository", repo.toString()));
    summary.put("machine", Machine.description());

    Path timelineJson = work.resolve("timeline.json");
    Path timelineHtml = work.resolve("timeline.html");
    Map<String, Object> timelineDoc = new LinkedHashMap<>();
    timelineDoc.put("unit", "ms from the exec of each run's first command");
    List<Object> rows = new ArrayList<>();
    for (RunTimeline t : timelines) {
      Map<String, Object> r = new LinkedHashMap<>();
      r.put("run", t.key());
      r.put("label", t.label());
      r.put("events_ms", roundAll(t.events()));
      r.put("bytes_fetched", t.bytesFetched());
      r.put("how", t.detail());
      r.put("cpu_s_at_first_inference", roundAll(t.cpuSeconds()));
      if (t.blockedReads() >= 0) {
        r.put("blocked_reads", t.blockedReads());
      }
      rows.add(r);
    }
    timelineDoc.put("runs", rows);
    timelineDoc.put("summary", summary);
    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(timelineJson.toFile(), timelineDoc);
    Files.writeString(timelineHtml, Waterfall.html("Thaw demo: time to first inference, " + human(modelBytes)
        + " model, origin throttled to " + rate, timelines));
    summary.put("timeline_json", timelineJson.toString());
    summary.put("timeline_html", timelineHtml.toString());
    return new Result(summary, table(timelines, modelBytes, bestDownloadS, goal), timelineJson, timelineHtml);
  }

  /** Everything one demo needs at hand while it runs its four paths. */
  private record Demo(Options o, PrintStream log, Path work, Path repo, long modelBytes, Path runs, Path logs, Path mnt,
      S3ProxyServer s3, ThrottlingProxy proxy, InferenceClient client, float[] input, float[] expected) {

    List<Downloader> downloaders() throws IOException {
      List<Downloader> list = new ArrayList<>();
      Path conf = work.resolve("rclone.conf");
      Files.writeString(conf, rcloneConfig("demo", proxy.port()));
      // rclone fails here while AWS_CA_BUNDLE is set
      list.add(new Downloader("rclone copy --transfers 8 --multi-thread-streams 8",
          List.of("rclone", "copy", "demo:" + S3ProxyServer.BUCKET + "/" + RAW_PREFIX, "DEST", "--config", conf.toString(),
              "--transfers", "8", "--multi-thread-streams", "8", "--multi-thread-cutoff", "16M", "--log-level", "ERROR"),
          Map.of(), Set.of("AWS_CA_BUNDLE")));
      String aws = Tools.which("aws");
      if (aws != null) {
        list.add(new Downloader("aws s3 cp --recursive (10 concurrent requests, 8 MiB parts)",
            // S3Proxy's file-system backend lists directories as keys ending in "/", which are not files
            List.of(aws, "s3", "cp", "--recursive", "--only-show-errors", "--exclude", "*/", "s3://" + S3ProxyServer.BUCKET + "/" + RAW_PREFIX,
                "DEST", "--endpoint-url", "http://127.0.0.1:" + proxy.port()),
            CREDENTIALS, Set.of("AWS_CA_BUNDLE", "AWS_PROFILE")));
      } else {
        log.println("demo: aws (the AWS CLI) is not installed; rclone is the parallel downloader");
      }
      return list;
    }

    /** Runs {@code dl} into a fresh directory; returns seconds from its exec to its exit, checked complete. */
    double timeDownload(Downloader dl) throws Exception {
      Path dest = runs.resolve("download");
      ModelGenerator.deleteTree(dest);
      Files.createDirectories(dest);
      Machine.dropPageCache(log);
      long t0 = System.nanoTime();
      download(dl, dest);
      double s = (System.nanoTime() - t0) / 1e9;
      ModelGenerator.deleteTree(dest);
      log.printf(Locale.ROOT, "demo: download alone, %s: %.2f s (%.2f GB/s)%n", dl.name(), s, modelBytes / 1e9 / s);
      return s;
    }

    private void download(Downloader dl, Path dest) throws Exception {
      List<String> cmd = dl.command().stream().map(a -> a.equals("DEST") ? dest.toString() : a).toList();
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(logs.resolve("download.log").toFile());
      Files.createDirectories(logs);
      pb.environment().keySet().removeAll(dl.unset());
      pb.environment().putAll(dl.env());
      Process p = pb.start();
      if (p.waitFor() != 0) {
        throw new IOException(dl.name() + " failed with exit " + p.exitValue() + ": "
            + String.join(" | ", Files.readAllLines(logs.resolve("download.log"))));
      }
      long got = treeBytes(dest);
      if (got != modelBytes) {
        throw new IOException(dl.name() + " wrote " + got + " bytes into " + dest + ", expected " + modelBytes);
      }
    }

    /** The network side alone: 8 MiB ranges of every file over {@code streams} curl connections, bodies to disk. */
    double timeCurlRanges(int streams) throws IOException {
      List<CurlDownload.Get> gets = new ArrayList<>();
      for (Path f : files(repo)) {
        String key = repo.relativize(f).toString();
        long size = Files.size(f);
        for (long off = 0; off < size; off += RANGE) {
          gets.add(new CurlDownload.Get(s3.httpUrl(RAW_PREFIX, key, proxy.port()), off, Math.min(size, off + RANGE) - 1));
        }
      }
      Path dest = runs.resolve("parts");
      Machine.dropPageCache(log);
      long t0 = System.nanoTime();
      CurlDownload.run(gets, streams, runs.resolve("tmp"), modelBytes, log, dest);
      double s = (System.nanoTime() - t0) / 1e9;
      ModelGenerator.deleteTree(dest);
      log.printf(Locale.ROOT, "demo: download alone, curl with %d streams of 8 MiB ranges: %.2f s (%.2f GB/s)%n", streams,
          s, modelBytes / 1e9 / s);
      return s;
    }

    RunTimeline downloadThenBoot(Downloader dl) throws Exception {
      Path dest = runs.resolve("download");
      ModelGenerator.deleteTree(dest);
      Files.createDirectories(dest);
      Machine.dropPageCache(log);
      proxy.resetCounters();
      Map<String, Double> ev = new LinkedHashMap<>();
      Map<String, Double> cpu = new LinkedHashMap<>();
      Cpu before = Cpu.now();
      long t0 = System.nanoTime();
      ev.put("exec", 0.0);
      download(dl, dest);
      ev.put("downloaded", ms(t0));
      cpu.put("downloader", Cpu.now().children() - before.children());
      long bytes = proxy.bytesToClients();
      proxy.firstByteNanos().ifPresent(n -> ev.put("first_byte", (n - t0) / 1e6));
      bootAndInfer(dest, t0, ev, "download-then-boot", cpu, before);
      return finish(new RunTimeline("download_then_boot", "download, then boot", ev, bytes,
          dl.name() + " into a local directory, then ort-server on it", cpu, -1));
    }

    RunTimeline lazy(String key, String label, boolean record) throws Exception {
      Path cache = runs.resolve("cache-" + key);
      ModelGenerator.deleteTree(cache);
      Machine.dropPageCache(log);
      proxy.resetCounters();
      List<String> cmd = new ArrayList<>(MountBench.thawCommand(o.thawCommand()));
      cmd.addAll(List.of("mount", NAME.toString(), mnt.toString(), "--origin", s3.originUri(STORE_PREFIX, proxy.port()),
          "--cache", cache.toString(), "--cache-size", "16g"));
      cmd.addAll(record ? List.of("--record-profile", "--prefetch", "off") : List.of("--prefetch", "auto"));
      Map<String, Double> ev = new LinkedHashMap<>();
      Map<String, Double> cpu = new LinkedHashMap<>();
      Cpu before = Cpu.now();
      long t0 = System.nanoTime();
      ev.put("exec", 0.0);
      long bytes;
      try (MountProcess mount = MountProcess.start("thaw mount", cmd, CREDENTIALS, Set.of(), mnt,
          logs.resolve("thaw-mount-" + key + ".log"))) {
        mount.awaitVisible(mnt.resolve(MODEL).resolve("config.pbtxt"), TIMEOUT_MS);
        ev.put("mounted", ms(t0));
        bootAndInfer(mnt, t0, ev, key, cpu, before);
        cpu.put("thaw_mount", mount.cpuSeconds());
        bytes = proxy.bytesToClients();
        proxy.firstByteNanos().ifPresent(n -> ev.put("first_byte", (n - t0) / 1e6));
      }
      String mountLog = Files.readString(logs.resolve("thaw-mount-" + key + ".log"));
      Matcher blocked = Pattern.compile("(\\d+) blocked reads").matcher(mountLog);
      long blockedReads = blocked.find() ? Long.parseLong(blocked.group(1)) : -1;
      if (record) {
        if (!mountLog.contains("saved access profile")) {
          throw new IOException("the recording mount saved no access profile: " + mountLog.strip());
        }
      }
      ModelGenerator.deleteTree(cache);
      return finish(new RunTimeline(key, label, ev, bytes, String.join(" ", cmd.subList(cmd.indexOf("mount"), cmd.size()))
          + ", then ort-server on the mount", cpu, blockedReads));
    }

    /**
     * Loads and compiles the sidecar's classes in this JVM with one mount and read of the model, on a throw-away
     * sidecar and cache: the sidecar rows then time a sidecar that has been up, as one beside a server is.
     */
    void warmSidecarJvm() throws Exception {
      Path dir = runs.resolve("sidecar-warm-up");
      try (RunningSidecar sidecar = RunningSidecar.start(s3.originUri(STORE_PREFIX, proxy.port()), dir)) {
        RunningSidecar.Mount m = sidecar.mount(NAME.toString(), "off");
        try (var files = Files.walk(m.mountpoint())) {
          for (Path f : files.filter(Files::isRegularFile).toList()) {
            try (var in = Files.newInputStream(f)) {
              in.readNBytes(1 << 20);
            }
          }
        }
        sidecar.unmount(m);
      } finally {
        ModelGenerator.deleteTree(dir);
      }
    }

    /** {@code POST /v1/mounts} to a running sidecar with an empty cache, then the server booted on the mount. */
    RunTimeline lazyThroughSidecar(String key, String label, String prefetch) throws Exception {
      Path dir = runs.resolve("sidecar-" + key);
      ModelGenerator.deleteTree(dir);
      Map<String, Double> ev = new LinkedHashMap<>();
      Map<String, Double> cpu = new LinkedHashMap<>();
      long bytes;
      try (RunningSidecar sidecar = RunningSidecar.start(s3.originUri(STORE_PREFIX, proxy.port()), dir)) {
        Machine.dropPageCache(log);
        proxy.resetCounters();
        Cpu before = Cpu.now();
        long t0 = System.nanoTime();
        ev.put("exec", 0.0); // POST /v1/mounts sent
        RunningSidecar.Mount m = sidecar.mount(NAME.toString(), prefetch);
        ev.put("mounted", RunningSidecar.awaitVisible(m.mountpoint().resolve(MODEL).resolve("config.pbtxt"), t0,
            TIMEOUT_MS));
        bootAndInfer(m.mountpoint(), t0, ev, key, cpu, before);
        // the sidecar runs in this JVM: its CPU is in this JVM's, beside the emulated cloud's
        cpu.put("origin_and_sidecar", cpu.remove("origin_s3proxy_and_throttle"));
        bytes = proxy.bytesToClients();
        proxy.firstByteNanos().ifPresent(n -> ev.put("first_byte", (n - t0) / 1e6));
        sidecar.unmount(m);
      } finally {
        ModelGenerator.deleteTree(dir);
      }
      return finish(new RunTimeline(key, label, ev, bytes, "POST /v1/mounts {\"source\": \"" + NAME + "\", \"prefetch\": \""
          + prefetch + "\"} to a running sidecar (empty cache), then ort-server on the mount", cpu, -1));
    }

    RunTimeline localDiskBoot() throws Exception {
      Machine.dropPageCache(log);
      proxy.resetCounters();
      Map<String, Double> ev = new LinkedHashMap<>();
      Map<String, Double> cpu = new LinkedHashMap<>();
      Cpu before = Cpu.now();
      long t0 = System.nanoTime();
      ev.put("exec", 0.0);
      bootAndInfer(repo, t0, ev, "local-disk", cpu, before);
      return finish(new RunTimeline("local_disk_boot", "local disk boot", ev, proxy.bytesToClients(),
          "ort-server on the model already on local disk", cpu, -1));
    }

    /** Starts the server on {@code repository}, waits until ready, infers once and checks the answer. */
    private void bootAndInfer(Path repository, long t0, Map<String, Double> ev, String key, Map<String, Double> cpu,
        Cpu before) throws Exception {
      List<String> cmd = new ArrayList<>(serverCommand(o));
      cmd.addAll(List.of("--model-repository", repository.toString(), "--model-control-mode", "explicit",
          "--load-model", MODEL, "--http-port", "0", "--grpc-port", "0", "--allow-metrics=false"));
      try (ServerProcess server = ServerProcess.start(cmd, logs.resolve("ort-server-" + key + ".log"))) {
        ev.put("server_exec", (server.execNanos() - t0) / 1e6);
        int port = server.httpPort(TIMEOUT_MS);
        ev.put("model_loaded", (server.await(ServerProcess.Milestone.MODEL_LOADED, TIMEOUT_MS) - t0) / 1e6);
        ev.put("ready", (server.await(ServerProcess.Milestone.READY, TIMEOUT_MS) - t0) / 1e6);
        float[] got = client.infer(port, MODEL, MlpGenerator.INPUT, MlpGenerator.OUTPUT, input, 1);
        ev.put("first_inference", ms(t0));
        double wall = (System.nanoTime() - t0) / 1e9;
        cpu.put("ort_server", MountProcess.cpuSeconds(server.pid()));
        // this JVM: S3Proxy and the throttling proxy, i.e. the emulated cloud, which a real node would not pay for
        cpu.put("origin_s3proxy_and_throttle", Cpu.now().self() - before.self());
        cpu.put("machine_busy_of_capacity", round((Machine.Counters.now().cpuBusy() - before.machine().cpuBusy())
            / (double) Math.max(1, Machine.Counters.now().cpuTotal() - before.machine().cpuTotal())));
        cpu.put("wall_s", wall);
        if (!InferenceClient.matches(got, expected)) {
          throw new IOException("ort-server answered wrongly in run " + key + ": got " + java.util.Arrays.toString(got)
              + ", expected " + java.util.Arrays.toString(expected));
        }
      }
    }

    RunTimeline finish(RunTimeline t) {
      log.printf(Locale.ROOT, "demo: %-48s first inference after %6.2f s, %s fetched%n", t.label() + ":",
          t.firstInferenceS(), human(t.bytesFetched()));
      return t;
    }
  }

  private static RunTimeline snapshotRow(String key, String label, SnapshotRuns.Timed t) {
    return new RunTimeline(key, label, t.events(), t.bytesFetched(), t.how(), t.cpuSeconds(), -1);
  }

  /** CPU seconds of this JVM and of its reaped children, and the machine's counters, at one moment. */
  record Cpu(double self, double children, Machine.Counters machine) {
    static Cpu now() {
      double[] t = MountProcess.cpuTimes(ProcessHandle.current().pid());
      return new Cpu(t[0] + t[1], t[2] + t[3], Machine.Counters.now());
    }
  }

  static List<String> serverCommand(Options o) {
    if (o.serverCommand() != null) {
      return o.serverCommand();
    }
    // the server's own jar (its manifest names its libraries) when built beside us, else this JVM's class path
    Path jar = Path.of("examples", "ort-server", "target", "ort-server.jar").toAbsolutePath();
    String cp = Files.exists(jar) ? jar.toString() : System.getProperty("java.class.path");
    return List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC", "-cp", cp, "dev.thaw.examples.ortserver.OrtServer");
  }

  /** An rclone configuration with one remote, {@code name}, for S3Proxy (or its throttle) on {@code port}. */
  static String rcloneConfig(String name, int port) {
    return """
        [%s]
        type = s3
        provider = Other
        endpoint = http://127.0.0.1:%d
        access_key_id = thaw-demo
        secret_access_key = thaw-demo-secret
        region = us-east-1
        force_path_style = true
        """.formatted(name, port);
  }

  /** Generates the model once per size and seed under {@code work}; returns the model repository. */
  static Path ensureModel(Path work, Options o, PrintStream log) throws IOException {
    Path dir = work.resolve("model-" + o.modelBytes() + "-" + o.seed());
    Path done = work.resolve("model-" + o.modelBytes() + "-" + o.seed() + ".done");
    Path repo = dir.resolve("repository");
    if (Files.exists(done) && Files.isDirectory(repo.resolve(MODEL))) {
      log.printf("demo: reusing the model in %s%n", repo);
      return repo;
    }
    ModelGenerator.deleteTree(dir);
    Files.createDirectories(repo);
    long t0 = System.nanoTime();
    MlpSpec spec = MlpSpec.forSize(o.modelBytes(), o.seed());
    long bytes = MlpGenerator.generate(repo, MODEL, spec);
    Files.writeString(done, spec.toJson() + "\n");
    log.printf(Locale.ROOT, "demo: generated an ONNX MLP of %s in %s (%.1f s)%n", human(bytes), repo,
        (System.nanoTime() - t0) / 1e9);
    return repo;
  }

  /** Places the model's files as plain objects under {@link #RAW_PREFIX}, for the downloaders (kept between runs). */
  private static void importRaw(S3ProxyServer s3, Path repo, PrintStream log) throws IOException {
    BlobStore bs = s3.blobStore();
    for (Path f : files(repo)) {
      String key = RAW_PREFIX + repo.relativize(f);
      long size = Files.size(f);
      BlobMetadata md = bs.blobMetadata(S3ProxyServer.BUCKET, key);
      if (md != null && md.getSize() != null && md.getSize() == size) {
        continue;
      }
      bs.putBlob(S3ProxyServer.BUCKET, bs.blobBuilder(key).payload(f.toFile()).contentLength(size).build());
    }
    log.printf("demo: the model's files are objects under s3://%s/%s%n", S3ProxyServer.BUCKET, RAW_PREFIX);
  }

  private static void push(S3ProxyServer s3, Path repo, PrintStream log) throws IOException {
    try (Origin origin = Origins.open(s3.originUri(STORE_PREFIX))) {
      long t0 = System.nanoTime();
      Pusher.Result r = new Pusher(origin, Pusher.DEFAULT_CHUNK_SIZE, 8, PushProgress.NONE).push(repo, NAME);
      log.printf(Locale.ROOT, "demo: pushed %s as %s: %s hashed, %s uploaded in %.1f s%n", NAME, r.digest(),
          human(r.bytesHashed()), human(r.bytesUploaded()), (System.nanoTime() - t0) / 1e9);
    }
  }

  static List<Path> files(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).sorted(Comparator.naturalOrder()).toList();
    }
  }

  static long treeBytes(Path dir) throws IOException {
    long n = 0;
    for (Path f : files(dir)) {
      n += Files.size(f);
    }
    return n;
  }

  private static double ms(long t0) {
    return (System.nanoTime() - t0) / 1e6;
  }

  static String table(List<RunTimeline> timelines, long modelBytes, double bestDownloadS, double goalS) {
    StringBuilder s = new StringBuilder();
    s.append(String.format(Locale.ROOT, "%-47s %12s %12s %9s %8s%n", "run (" + human(modelBytes) + " model)",
        "first answer", "fetched", "speed-up", "CPU s"));
    double base = timelines.getFirst().firstInferenceS();
    for (RunTimeline t : timelines) {
      s.append(String.format(Locale.ROOT, "%-47s %10.2f s %12s %8.2fx %8.1f%n", t.label(), t.firstInferenceS(),
          human(t.bytesFetched()), base / t.firstInferenceS(), t.cpuTotal()));
    }
    s.append(String.format(Locale.ROOT, "%-47s %10.2f s%n", "best parallel download alone", bestDownloadS));
    s.append(String.format(Locale.ROOT, "goal: lazy mount + profile <= %.2f s (1.2 x max(download alone, local disk boot))%n",
        goalS));
    s.append(String.format(Locale.ROOT, "CPU s: every process of the run until its first answer, the emulated origin (S3Proxy and"
        + " the throttle) included; this machine has %d cores%n", Machine.nproc()));
    return s.toString();
  }

  static String human(long bytes) {
    if (bytes >= (1L << 30)) {
      return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }
    if (bytes >= (1L << 20)) {
      return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
    return bytes + " B";
  }

  static double round(double v) {
    return StoreBench.round(v);
  }

  private static Map<String, Double> roundAll(Map<String, Double> m) {
    Map<String, Double> r = new LinkedHashMap<>();
    m.forEach((k, v) -> r.put(k, Math.round(v * 100) / 100.0));
    return r;
  }
}
