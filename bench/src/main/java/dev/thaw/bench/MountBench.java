package dev.thaw.bench;

import dev.thaw.fuse.LazyMount;
import dev.thaw.fuse.MountOptions;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import dev.thaw.testkit.S3ProxyServer;
import dev.thaw.testkit.Tools;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.locks.LockSupport;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.domain.BlobMetadata;

/**
 * The mount benchmark ({@code thaw bench mount}): Thaw's FUSE mount against {@code rclone mount}, {@code s3fs} and
 * download-then-read, on the same data (one large shard and a set of smaller files, random bytes) served by S3Proxy
 * behind the same 100 MB/s-per-connection throttle as {@link StoreBench}. For each system: time from the exec of
 * the mount command until the shard is visible, time to its first 4 KiB, a cold sequential read of the shard, four
 * parallel readers over the small files, a re-read with the page cache dropped and one with it warm. Plus the time
 * Thaw's FUSE session needs to show a file of a synthetic 1 TB manifest, and the baselines: best parallel download,
 * local disk read, page-cache read. Rates are GB/s = 10^9 bytes per second.
 */
public final class MountBench {
  private MountBench() {}

  static final ModelName SHARD_NAME = ModelName.parse("bench-mount-shard:v1");
  static final ModelName FILES_NAME = ModelName.parse("bench-mount-files:v1");
  static final String RAW_PREFIX = "raw/";
  static final String STORE_PREFIX = "store/";
  static final int READ_SIZE = 1 << 20;
  static final int TTFB_BYTES = 4096;
  static final int READERS = 4;
  static final int RANGE = 8 << 20;
  static final int[] STREAMS = {8, 16, 32};
  static final List<String> ALL_SYSTEMS = List.of("thaw", "rclone", "s3fs", "download");
  static final String ACCESS_KEY = "thaw-bench";
  static final String SECRET_KEY = "thaw-bench-secret";

  /**
   * @param shardBytes size of the one large file
   * @param fileCount number of smaller files
   * @param fileBytes size of each smaller file
   * @param repeats mounts per configuration for ready and first-4-KiB times (the median is reported)
   * @param systems which of thaw, rclone, s3fs, download to run
   * @param workDir data, S3Proxy's directory, caches and logs (data and S3Proxy objects are kept and reused)
   * @param thawCommand the command that runs the thaw CLI (java and its arguments); null: this JVM's command line
   * @param blockSize the block size Thaw's models are pushed with (version 2 manifests); 0: version 1 manifests, whose
   *     reads wait for whole chunks (for an A/B)
   */
  public record Options(long shardBytes, int fileCount, long fileBytes, int repeats, Set<String> systems, Path workDir,
      List<String> thawCommand, int blockSize) {
    public static Options defaults() {
      return new Options(2L << 30, 20, 100L << 20, 3, new LinkedHashSet<>(ALL_SYSTEMS), Path.of("target", "bench-mount"),
          null, Pusher.defaultBlockSize(Pusher.DEFAULT_CHUNK_SIZE));
    }

    public Options {
      if (shardBytes < (1 << 20) || fileCount < 1 || fileBytes < (1 << 20) || repeats < 1) {
        throw new IllegalArgumentException("shard and files >= 1 MiB, at least one file and one repeat");
      }
      for (String s : systems) {
        if (!ALL_SYSTEMS.contains(s)) {
          throw new IllegalArgumentException("unknown system '" + s + "' (known: " + String.join(", ", ALL_SYSTEMS) + ")");
        }
      }
    }
  }

  /** Every figure, as {@link #toJson()} prints it. */
  public record Result(Map<String, Object> details) {
    public String toJson() {
      try {
        return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(details);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new IllegalStateException("bench result is not serialisable", e);
      }
    }
  }

  /** A timed phase: its rate, what the machine did meanwhile, CPU of the mount daemon and of this JVM (the origin). */
  /**
   * {@code daemonThreadsCpuS}: the daemon's user and system CPU seconds by thread name
   * ({@link MountProcess#threadCpuSeconds}), or empty.
   */
  record Phase(String name, long bytes, double seconds, Machine.Usage usage, double daemonCpuS, double benchCpuS,
      Map<String, Map<String, Double>> daemonThreadsCpuS) {
    double gbps() {
      return bytes / 1e9 / seconds;
    }
  }

  /** The six figures of one system in one configuration. */
  record Metrics(String config, double readyMs, double ttfbMs, double coldGbps, double manyFilesGbps, double warmGbps,
      double hotGbps, Map<String, Object> extra) {
    Map<String, Object> toMap() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("config", config);
      m.put("ready_ms", round(readyMs));
      m.put("ttfb_ms", round(ttfbMs));
      m.put("cold_gbps", round(coldGbps));
      m.put("many_files_gbps", round(manyFilesGbps));
      m.put("warm_gbps", round(warmGbps));
      m.put("hot_gbps", round(hotGbps));
      m.putAll(extra);
      return m;
    }
  }

  /** Starts one system's mount: {@code model} is "shard" or "files" (peers mount both at once and ignore it). */
  @FunctionalInterface
  interface Mounter {
    MountProcess start(Path mountPoint, Path cacheDir, String model, Path logFile) throws IOException;
  }

  /**
   * A FUSE system in one configuration. {@code shardPath} and {@code filesDir} are relative to the mount point;
   * with {@code separateFilesMount} the small files are a model of their own, mounted fresh for the many-files read.
   */
  record FuseSystem(String system, String config, Mounter mounter, String shardPath, String filesDir,
      boolean separateFilesMount) {}

  /** The generated data: one shard and the small files, each set in a directory of its own. */
  record Data(Path shardDir, Path shard, Path filesDir, List<Path> files, long shardBytes, long filesBytes) {}

  private static final class Run {
    final Options o;
    final PrintStream log;
    final Path work;
    final List<Phase> phases = new ArrayList<>();
    Run(Options o, PrintStream log) {
      this.o = o;
      this.log = log;
      this.work = o.workDir().toAbsolutePath();
    }
  }

  public static Result run(Options o, PrintStream log) throws Exception {
    long runStart = System.nanoTime();
    Run run = new Run(o, log);
    Path work = run.work;
    Files.createDirectories(work);
    log.printf(Locale.ROOT, "thaw bench mount: shard %.2f GB, %d x %.0f MB files, systems %s, work dir %s%n",
        o.shardBytes() / 1e9, o.fileCount(), o.fileBytes() / 1e6, o.systems(), work);
    log.printf("machine: %d cores, %s, %.1f GiB RAM, %s%n", Machine.nproc(), Machine.cpuModel(),
        Machine.memTotalBytes() / (double) (1L << 30), Machine.kernel());
    Tools.require("curl", "curl", log);
    if (o.systems().contains("rclone")) {
      Tools.require("rclone", "rclone", log);
    }
    if (o.systems().contains("s3fs")) {
      Tools.require("s3fs", "s3fs", log);
    }
    Tools.require("fusermount3", "fuse3", log);
    Data data = ensureData(work, o, log);
    Path tmp = work.resolve("tmp");
    Path caches = work.resolve("cache");
    ModelGenerator.deleteTree(caches);
    ModelGenerator.deleteTree(tmp);
    Files.createDirectories(tmp);
    Path mnt = work.resolve("mnt");
    MountProcess.clear(mnt);

    Map<String, Object> d = new LinkedHashMap<>();
    Map<String, Metrics> best = new LinkedHashMap<>();
    Map<String, Object> configs = new LinkedHashMap<>();

    // baselines on the local disk and in the page cache
    boolean dropped = Machine.dropPageCache(log);
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
    Phase disk = measure(run, "local disk read of the shard (1 MiB reads)", true, null,
        () -> StoreBench.readFile(data.shard(), buf));
    measure(run, "page cache: read of the shard (warming)", false, null, () -> StoreBench.readFile(data.shard(), buf));
    Phase pageCache = measure(run, "page-cache read of the shard (1 MiB reads)", false, null,
        () -> StoreBench.readFile(data.shard(), buf));

    Map<String, Object> mount1tb = null;
    if (o.systems().contains("thaw")) {
      mount1tb = mountSynthetic1Tb(work, 5, log);
    }

    String throttleMethod;
    double throttleCheck;
    Map<String, Double> parallel = new LinkedHashMap<>();
    try (S3ProxyServer s3 = S3ProxyServer.start(work.resolve("s3"))) {
      importRaw(s3, data, log);
      if (o.systems().contains("thaw")) {
        pushModels(s3, data, o.blockSize(), log);
      }
      try (Throttle throttle = Throttle.install(s3.port(), log)) {
        throttleMethod = throttle.method();
        int port = throttle.port();
        throttleCheck = throttleCheck(s3, port, data, tmp, log);

        // best parallel download of the shard: 8 MiB ranges, to disk
        List<CurlDownload.Get> shardGets = ranges(s3.httpUrl(RAW_PREFIX, "shard.bin", port), data.shardBytes());
        Path dl = tmp.resolve("downloads");
        for (int n : STREAMS) {
          Phase p = measure(run, "download: curl, " + n + " streams, shard to disk", true, null,
              () -> CurlDownload.run(shardGets, n, tmp, data.shardBytes(), log, dl));
          ModelGenerator.deleteTree(dl);
          parallel.put(String.valueOf(n), p.gbps());
        }
        int bestStreams = Integer.parseInt(parallel.entrySet().stream()
            .max(Map.Entry.comparingByValue()).orElseThrow().getKey());

        if (o.systems().contains("download")) {
          Metrics m = measureDownload(run, s3, port, data, bestStreams, tmp);
          configs.put("download", m.toMap());
          best.put("download", m);
        }
        if (o.systems().contains("thaw")) {
          Map<String, Object> recorded = recordThawProfiles(run, s3, port, data, mnt, caches);
          FuseSystem thaw = new FuseSystem("thaw",
              "thaw mount, fresh chunk cache, --prefetch auto (profile recorded by a first mount with --record-profile)",
              thawMounter(run, s3, port, false, "auto"), "shard.bin", "", true);
          Metrics m = measureFuse(run, thaw, data, mnt, caches);
          m.extra().put("record_pass", recorded);
          m.extra().put("ready_breakdown", thawReadyBreakdown(run, s3, mnt, caches));
          run.log.println("thaw through a running sidecar (POST /v1/mounts)");
          m.extra().put("sidecar", SidecarMountTimes.measure(s3.originUri(STORE_PREFIX, port), SHARD_NAME.toString(),
              "shard.bin", work.resolve("sidecars"), o.repeats(), run.log));
          configs.put("thaw", m.toMap());
          best.put("thaw", m);
        }
        if (o.systems().contains("rclone")) {
          Path conf = writeRcloneConfig(work, port);
          List<Metrics> ms = new ArrayList<>();
          for (String mode : List.of("full", "off")) {
            FuseSystem rc = new FuseSystem("rclone", "rclone mount --read-only --vfs-cache-mode " + mode,
                rcloneMounter(conf, mode), "shard.bin", "files", false);
            Metrics m = measureFuse(run, rc, data, mnt, caches);
            configs.put("rclone_" + mode, m.toMap());
            ms.add(m);
          }
          best.put("rclone", bestOf(ms));
        }
        if (o.systems().contains("s3fs")) {
          Path passwd = writeS3fsPasswd(work);
          List<Metrics> ms = new ArrayList<>();
          for (boolean cache : List.of(true, false)) {
            FuseSystem sf = new FuseSystem("s3fs", "s3fs -o use_path_request_style" + (cache ? " -o use_cache=DIR" : "")
                + " (cache " + (cache ? "on" : "off") + ")", s3fsMounter(passwd, port, cache), "shard.bin", "files", false);
            Metrics m = measureFuse(run, sf, data, mnt, caches);
            configs.put("s3fs_" + (cache ? "cache" : "nocache"), m.toMap());
            ms.add(m);
          }
          best.put("s3fs", bestOf(ms));
        }
      }
    } finally {
      MountProcess.clear(mnt);
      ModelGenerator.deleteTree(caches);
      ModelGenerator.deleteTree(tmp);
    }

    double bestDownload = parallel.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
    for (var e : best.entrySet()) {
      Metrics m = e.getValue();
      String s = e.getKey();
      d.put(s + "_config", m.config());
      d.put(s + "_ready_ms", round(m.readyMs()));
      d.put(s + "_ttfb_ms", round(m.ttfbMs()));
      d.put(s + "_cold_gbps", round(m.coldGbps()));
      d.put(s + "_many_files_gbps", round(m.manyFilesGbps()));
      d.put(s + "_warm_gbps", round(m.warmGbps()));
      d.put(s + "_hot_gbps", round(m.hotGbps()));
      for (String phase : List.of("cold", "warm", "hot")) {
        d.put(s + "_cpu_s_per_gb_" + phase, m.extra().get("cpu_s_per_gb_" + phase));
      }
    }
    if (best.get("thaw") != null && best.get("thaw").extra().get("sidecar") instanceof Map<?, ?> sc) {
      d.put("thaw_sidecar_ready_ms", sc.get("ready_ms"));
      d.put("thaw_sidecar_ttfb_ms", sc.get("ttfb_ms"));
    }
    if (mount1tb != null) {
      d.put("thaw_mount_1tb_ms", mount1tb.get("median_ms"));
    }
    d.put("best_parallel_download_gbps", round(bestDownload));
    d.put("local_disk_read_gbps", round(disk.gbps()));
    d.put("page_cache_read_gbps", round(pageCache.gbps()));

    Map<String, Object> ratios = new LinkedHashMap<>();
    Map<String, Object> met = new LinkedHashMap<>();
    Map<String, Object> goals = new LinkedHashMap<>();
    Metrics thaw = best.get("thaw");
    if (thaw != null) {
      if (mount1tb != null) {
        double v = (Double) mount1tb.get("median_ms");
        goalAtMost(ratios, met, goals, "mount_1tb_ms_vs_50ms", v / 50.0, "thaw_mount_1tb_ms < 50", v < 50);
      }
      // issue 18's goals
      goalAtMost(ratios, met, goals, "ready_ms_vs_300ms", thaw.readyMs() / 300.0, "thaw_ready_ms <= 300",
          thaw.readyMs() <= 300);
      goalAtMost(ratios, met, goals, "ttfb_ms_vs_50ms", thaw.ttfbMs() / 50.0, "thaw_ttfb_ms <= 50", thaw.ttfbMs() <= 50);
      if (thaw.extra().get("sidecar") instanceof Map<?, ?> sc && sc.get("ready_ms") instanceof Double v) {
        goalAtMost(ratios, met, goals, "sidecar_ready_ms_vs_50ms", v / 50.0, "thaw_sidecar_ready_ms <= 50", v <= 50);
      }
      goalAtLeast(ratios, met, goals, "cold_vs_best_parallel_download", thaw.coldGbps() / bestDownload, 0.9);
      if (best.containsKey("rclone")) {
        goalAtLeast(ratios, met, goals, "cold_vs_rclone", thaw.coldGbps() / best.get("rclone").coldGbps(), 2.0);
      }
      if (best.containsKey("s3fs")) {
        Metrics s3fs = best.get("s3fs");
        goalAtLeast(ratios, met, goals, "cold_vs_s3fs", thaw.coldGbps() / s3fs.coldGbps(), 1.5);
        if (thaw.extra().get("cpu_s_per_gb_cold") instanceof Double t && s3fs.extra().get("cpu_s_per_gb_cold") instanceof Double f
            && f > 0) {
          goalAtMost(ratios, met, goals, "cold_cpu_per_gb_vs_s3fs", t / f, "thaw_cpu_s_per_gb_cold <= s3fs's", t <= f);
        }
      }
      if (thaw.extra().get("cpu_s_per_gb_warm") instanceof Double w) {
        goalAtMost(ratios, met, goals, "warm_cpu_per_gb_vs_0.3", w / 0.3, "thaw_cpu_s_per_gb_warm <= 0.3", w <= 0.3);
      }
      goalAtLeast(ratios, met, goals, "warm_vs_local_disk", thaw.warmGbps() / disk.gbps(), 0.9);
      goalAtLeast(ratios, met, goals, "hot_vs_page_cache", thaw.hotGbps() / pageCache.gbps(), 0.9);
    }
    d.put("ratios", ratios);
    d.put("goals", goals);
    d.put("goals_met", met);
    d.put("configs", configs);
    if (mount1tb != null) {
      d.put("mount_1tb", mount1tb);
    }
    d.put("parallel_download_gbps", roundAll(parallel));

    Map<String, Object> setup = new LinkedHashMap<>();
    setup.put("shard_bytes", data.shardBytes());
    setup.put("files", o.fileCount());
    setup.put("file_bytes", o.fileBytes());
    setup.put("read_size", READ_SIZE);
    setup.put("many_files_readers", READERS);
    setup.put("repeats_for_ready_and_ttfb", o.repeats());
    setup.put("block_size", o.blockSize());
    setup.put("origin", "S3Proxy 3.0.0 in the bench's JVM (jclouds filesystem backend, auth off); raw objects under "
        + RAW_PREFIX + " for rclone, s3fs and curl; Thaw's chunks pushed under " + STORE_PREFIX);
    setup.put("throttle", throttleMethod);
    setup.put("throttle_rate_mbps_per_connection", Throttle.RATE_BYTES / 1e6);
    setup.put("throttle_burst_bytes", Throttle.BURST_BYTES);
    setup.put("throttle_check_mbps_one_connection", round(throttleCheck));
    setup.put("page_cache_dropped", dropped);
    setup.put("thaw_command", String.join(" ", thawCommand(o.thawCommand())));
    d.put("setup", setup);
    d.put("machine", Machine.description());
    List<Object> ph = new ArrayList<>();
    for (Phase p : run.phases) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("name", p.name());
      m.put("bytes", p.bytes());
      m.put("seconds", round(p.seconds()));
      m.put("gbps", round(p.gbps()));
      p.usage().putInto(m);
      m.put("daemon_cpu_s", round(p.daemonCpuS()));
      m.put("bench_jvm_cpu_s", round(p.benchCpuS()));
      ph.add(m);
    }
    d.put("phases", ph);
    d.put("elapsed_s", round((System.nanoTime() - runStart) / 1e9));

    printTable(run, best, d, ratios, met);
    return new Result(d);
  }

  // ---------------------------------------------------------------- data and origin

  static Data ensureData(Path work, Options o, PrintStream log) throws IOException {
    Path dir = work.resolve("data-" + o.shardBytes() + "-" + o.fileCount() + "x" + o.fileBytes());
    Path done = dir.resolveSibling(dir.getFileName() + ".done");
    Path shardDir = dir.resolve("shard");
    Path filesDir = dir.resolve("files");
    Path shard = shardDir.resolve("shard.bin");
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < o.fileCount(); i++) {
      files.add(filesDir.resolve(String.format("file-%02d.bin", i)));
    }
    Data data = new Data(shardDir, shard, filesDir, files, o.shardBytes(), o.fileCount() * o.fileBytes());
    if (Files.exists(done)) {
      log.printf("data: reusing %s%n", dir);
      return data;
    }
    ModelGenerator.deleteTree(dir);
    Files.createDirectories(shardDir);
    Files.createDirectories(filesDir);
    long t0 = System.nanoTime();
    try (ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, Machine.nproc()))) {
      List<Future<?>> fs = new ArrayList<>();
      // the shard in pieces written in parallel would need offsets; one task for it, the files beside it
      fs.add(pool.submit(() -> {
        ModelGenerator.writeRandom(shard, o.shardBytes(), 0x5a4dL + o.shardBytes());
        return null;
      }));
      for (int i = 0; i < files.size(); i++) {
        Path p = files.get(i);
        long seed = 0xf11eL * (i + 1) + o.fileBytes();
        fs.add(pool.submit(() -> {
          ModelGenerator.writeRandom(p, o.fileBytes(), seed);
          return null;
        }));
      }
      for (Future<?> f : fs) {
        f.get();
      }
    } catch (Exception e) {
      throw new IOException("generating the data failed: " + e, e);
    }
    Files.writeString(done, (data.shardBytes() + data.filesBytes()) + "\n");
    log.printf(Locale.ROOT, "data: generated %s (%.2f GB) in %.1f s%n", dir, (data.shardBytes() + data.filesBytes()) / 1e9,
        (System.nanoTime() - t0) / 1e9);
    return data;
  }

  /** Places the data as plain objects under {@link #RAW_PREFIX} through jclouds (kept between runs). */
  private static void importRaw(S3ProxyServer s3, Data data, PrintStream log) throws IOException {
    BlobStore bs = s3.blobStore();
    Map<String, Path> objects = new LinkedHashMap<>();
    objects.put(RAW_PREFIX + "shard.bin", data.shard());
    for (Path f : data.files()) {
      objects.put(RAW_PREFIX + "files/" + f.getFileName(), f);
    }
    long t0 = System.nanoTime();
    long copied = 0;
    for (var e : objects.entrySet()) {
      long size = Files.size(e.getValue());
      BlobMetadata md = bs.blobMetadata(S3ProxyServer.BUCKET, e.getKey());
      if (md != null && md.getSize() != null && md.getSize() == size) {
        continue;
      }
      bs.putBlob(S3ProxyServer.BUCKET,
          bs.blobBuilder(e.getKey()).payload(e.getValue().toFile()).contentLength(size).build());
      copied += size;
    }
    if (copied > 0) {
      log.printf(Locale.ROOT, "S3Proxy: placed %.2f GB of raw objects under %s in %.1f s%n", copied / 1e9, RAW_PREFIX,
          (System.nanoTime() - t0) / 1e9);
    }
  }

  /** Pushes the shard and the files as two models with Thaw's {@link Pusher} (unthrottled: set-up, not measured). */
  private static void pushModels(S3ProxyServer s3, Data data, int blockSize, PrintStream log) throws IOException {
    try (Origin origin = Origins.open(s3.originUri(STORE_PREFIX))) {
      for (var e : Map.of(SHARD_NAME, data.shardDir(), FILES_NAME, data.filesDir()).entrySet()) {
        long t0 = System.nanoTime();
        Pusher.Result r = new Pusher(origin, Pusher.DEFAULT_CHUNK_SIZE, blockSize, 8, PushProgress.NONE)
            .push(e.getValue(), e.getKey());
        log.printf(Locale.ROOT, "push %s: %.2f GB hashed, %.2f GB uploaded in %.1f s%n", e.getKey(), r.bytesHashed() / 1e9,
            r.bytesUploaded() / 1e9, (System.nanoTime() - t0) / 1e9);
      }
    }
  }

  private static double throttleCheck(S3ProxyServer s3, int port, Data data, Path tmp, PrintStream log) throws IOException {
    List<CurlDownload.Get> probe = new ArrayList<>();
    String url = s3.httpUrl(RAW_PREFIX, "shard.bin", port);
    for (int i = 0; i < 8; i++) {
      probe.add(new CurlDownload.Get(url, (long) i << 23, ((long) (i + 1) << 23) - 1));
    }
    CurlDownload.run(probe, 1, tmp, 64L << 20, log); // into memory first
    long t0 = System.nanoTime();
    CurlDownload.run(probe, 1, tmp, 64L << 20, log);
    double mbps = (64L << 20) / 1e6 / ((System.nanoTime() - t0) / 1e9);
    log.printf(Locale.ROOT, "throttle check: one connection, 8 x 8 MiB ranges: %.1f MB/s (target %.0f MB/s)%n", mbps,
        Throttle.RATE_BYTES / 1e6);
    return mbps;
  }

  private static List<CurlDownload.Get> ranges(String url, long size) {
    List<CurlDownload.Get> gets = new ArrayList<>();
    for (long off = 0; off < size; off += RANGE) {
      gets.add(new CurlDownload.Get(url, off, Math.min(size, off + RANGE) - 1));
    }
    return gets;
  }

  // ---------------------------------------------------------------- the systems

  /** The thaw CLI as {@code ./thaw} starts it: this JVM's java and flags, the sidecar's class path. */
  static List<String> thawCommand(List<String> given) {
    if (given != null) {
      return given;
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    List<String> flags = ManagementFactory.getRuntimeMXBean().getInputArguments();
    if (flags.stream().noneMatch(f -> f.startsWith("--enable-native-access"))) {
      cmd.add("--enable-native-access=ALL-UNNAMED");
    }
    cmd.addAll(flags);
    Path sidecar = Path.of("sidecar", "target").toAbsolutePath();
    cmd.add("-cp");
    if (Files.isDirectory(sidecar.resolve("lib")) && Files.exists(sidecar.resolve("thaw-sidecar.jar"))) {
      // The class path ./thaw uses, so its ahead-of-time cache (-XX:AOTCache among the flags above) applies.
      cmd.add(sidecar.resolve("thaw-sidecar.jar") + ":" + sidecar.resolve("lib") + "/*");
    } else {
      cmd.add(System.getProperty("java.class.path"));
    }
    cmd.add(dev.thaw.cli.Main.class.getName());
    return cmd;
  }

  private static Mounter thawMounter(Run run, S3ProxyServer s3, int port, boolean record, String prefetch) {
    String origin = s3.originUri(STORE_PREFIX, port);
    return (mnt, cache, model, logFile) -> {
      List<String> cmd = new ArrayList<>(thawCommand(run.o.thawCommand()));
      cmd.addAll(List.of("mount", (model.equals("files") ? FILES_NAME : SHARD_NAME).toString(), mnt.toString(),
          "--origin", origin, "--cache", cache.toString(), "--cache-size", "16g", "--prefetch", prefetch, "--passthrough"));
      if (record) {
        cmd.add("--record-profile");
      }
      return MountProcess.start("thaw mount", cmd, Map.of("AWS_ACCESS_KEY_ID", ACCESS_KEY, "AWS_SECRET_ACCESS_KEY",
          SECRET_KEY, "AWS_REGION", "us-east-1"), Set.of(), mnt, logFile);
    };
  }

  private static Path writeRcloneConfig(Path work, int port) throws IOException {
    Path conf = work.resolve("rclone.conf");
    Files.writeString(conf, """
        [bench]
        type = s3
        provider = Other
        endpoint = http://127.0.0.1:%d
        access_key_id = %s
        secret_access_key = %s
        region = us-east-1
        force_path_style = true
        """.formatted(port, ACCESS_KEY, SECRET_KEY));
    return conf;
  }

  private static Mounter rcloneMounter(Path conf, String mode) {
    return (mnt, cache, model, logFile) -> MountProcess.start("rclone mount", List.of(
        "rclone", "mount", "bench:" + S3ProxyServer.BUCKET + "/" + RAW_PREFIX, mnt.toString(),
        "--config", conf.toString(), "--read-only", "--vfs-cache-mode", mode, "--cache-dir", cache.toString(),
        "--log-level", "NOTICE"),
        Map.of(), Set.of("AWS_CA_BUNDLE"), mnt, logFile); // rclone fails here while AWS_CA_BUNDLE is set
  }

  private static Path writeS3fsPasswd(Path work) throws IOException {
    Path f = work.resolve("s3fs.passwd");
    Files.deleteIfExists(f);
    Files.createFile(f, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    Files.writeString(f, ACCESS_KEY + ":" + SECRET_KEY + "\n");
    return f;
  }

  private static Mounter s3fsMounter(Path passwd, int port, boolean cache) {
    return (mnt, cacheDir, model, logFile) -> {
      List<String> cmd = new ArrayList<>(List.of("s3fs", S3ProxyServer.BUCKET + ":/" + RAW_PREFIX.replace("/", ""),
          mnt.toString(), "-f", "-o", "ro", "-o", "url=http://127.0.0.1:" + port, "-o", "use_path_request_style",
          "-o", "passwd_file=" + passwd, "-o", "endpoint=us-east-1", "-o", "dbglevel=err"));
      if (cache) {
        Files.createDirectories(cacheDir);
        cmd.addAll(List.of("-o", "use_cache=" + cacheDir));
      }
      return MountProcess.start("s3fs", cmd, Map.of(), Set.of(), mnt, logFile);
    };
  }

  /** The best configuration: highest cold read (to 0.01 GB/s), then highest re-read with the page cache dropped. */
  private static Metrics bestOf(List<Metrics> ms) {
    return ms.stream().max((a, b) -> {
      int c = Long.compare(Math.round(a.coldGbps() * 100), Math.round(b.coldGbps() * 100));
      return c != 0 ? c : Double.compare(a.warmGbps(), b.warmGbps());
    }).orElseThrow();
  }

  /**
   * Thaw's first mounts, with {@code --record-profile} and no prefetch, over fresh caches: the shard read front to
   * back and the files read by four readers, as the measured mounts then read them. The profiles are saved at the
   * origin when these mounts end, and {@code --prefetch auto} finds them there. These are also Thaw's cold reads
   * without a profile.
   */
  private static Map<String, Object> recordThawProfiles(Run run, S3ProxyServer s3, int port, Data data, Path mnt,
      Path caches) throws Exception {
    Mounter rec = thawMounter(run, s3, port, true, "off");
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("what", "thaw mount --record-profile --prefetch off, fresh cache: the profile-recording first mounts");
    Path cache = caches.resolve("thaw-record");
    ModelGenerator.deleteTree(cache);
    Machine.dropPageCache(run.log);
    try (MountProcess mp = rec.start(mnt, cache, "shard", run.work.resolve("logs/thaw-record-shard.log"))) {
      Path shard = mnt.resolve("shard.bin");
      out.put("ready_ms", round(mp.awaitVisible(shard, 60_000)));
      ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
      Phase p = measure(run, "thaw (recording, no prefetch): cold shard", false, mp, () -> StoreBench.readFile(shard, buf));
      out.put("cold_gbps", round(p.gbps()));
    }
    ModelGenerator.deleteTree(cache);
    Machine.dropPageCache(run.log);
    try (MountProcess mp = rec.start(mnt, cache, "files", run.work.resolve("logs/thaw-record-files.log"))) {
      List<Path> files = data.files().stream().map(f -> mnt.resolve(f.getFileName().toString())).toList();
      mp.awaitVisible(files.getFirst(), 60_000);
      Phase p = measure(run, "thaw (recording, no prefetch): 4 readers, files", false, mp, () -> readParallel(files));
      out.put("many_files_gbps", round(p.gbps()));
    }
    ModelGenerator.deleteTree(cache);
    return out;
  }

  /**
   * Where Thaw's ready time goes: the JVM alone ({@code thaw --version}, exec to exit), and a mount of the same
   * pushed model from a {@code file://} origin (S3Proxy's own directory: no S3 client, no network), each the median of
   * {@code repeats}.
   */
  private static Map<String, Object> thawReadyBreakdown(Run run, S3ProxyServer s3, Path mnt, Path caches)
      throws Exception {
    Map<String, Object> out = new LinkedHashMap<>();
    double[] version = new double[run.o.repeats()];
    for (int i = 0; i < version.length; i++) {
      List<String> cmd = new ArrayList<>(thawCommand(run.o.thawCommand()));
      cmd.add("--version");
      long t0 = System.nanoTime();
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
      p.waitFor();
      version[i] = (System.nanoTime() - t0) / 1e6;
    }
    out.put("jvm_thaw_version_ms", round(median(version)));
    Path storeDir = run.work.resolve("s3").resolve(S3ProxyServer.BUCKET).resolve(STORE_PREFIX);
    double[] file = new double[run.o.repeats()];
    for (int i = 0; i < file.length; i++) {
      Path cache = caches.resolve("thaw-file-origin");
      ModelGenerator.deleteTree(cache);
      List<String> cmd = new ArrayList<>(thawCommand(run.o.thawCommand()));
      cmd.addAll(List.of("mount", SHARD_NAME.toString(), mnt.toString(), "--origin", storeDir.toUri().toString(),
          "--cache", cache.toString(), "--cache-size", "16g", "--prefetch", "off"));
      try (MountProcess mp = MountProcess.start("thaw mount (file origin)", cmd, Map.of(), Set.of(), mnt,
          run.work.resolve("logs/thaw-file-origin-" + i + ".log"))) {
        file[i] = mp.awaitVisible(mnt.resolve("shard.bin"), 60_000);
      }
      ModelGenerator.deleteTree(cache);
    }
    out.put("ready_ms_file_origin", round(median(file)));
    run.log.printf(Locale.ROOT, "thaw ready breakdown: JVM (thaw --version) %.0f ms; mount from a file:// origin %.0f ms%n",
        median(version), median(file));
    return out;
  }

  /**
   * Waits for Thaw to have made the whole-file copy of the shard it just read (in the background after the close; the
   * kernel reads later opens from it, FUSE passthrough): the warm and hot phases stand for a later start on the node,
   * not one racing the copy. The copy's CPU still counts: the daemon's, in the warm phase.
   */
  private static void awaitWholeFileCopy(Run run, Path cache) throws Exception {
    long t0 = System.nanoTime();
    Path fan = cache.resolve("chunks/wh");
    while (System.nanoTime() - t0 < 60_000_000_000L) {
      if (Files.isDirectory(fan)) {
        try (var files = Files.list(fan)) {
          if (files.anyMatch(p -> p.getFileName().toString().startsWith("whole-"))) {
            Thread.sleep(200); // the copy is renamed into place, then marked verified
            run.log.printf(Locale.ROOT, "  thaw: whole-file copy of the shard ready %.0f ms after the cold read%n",
                (System.nanoTime() - t0) / 1e6);
            return;
          }
        }
      }
      Thread.sleep(20);
    }
    run.log.printf("  thaw: no whole-file copy of the shard within 60 s; the re-reads go through Thaw%n");
  }

  /**
   * Ready and first 4 KiB over {@code repeats} fresh mounts (page cache dropped, cache empty); the last mount goes on
   * with the cold read of the shard, the re-read with the page cache dropped, and the re-read with it warm; the many
   * files are read cold by four readers on the same mount (page cache dropped), or on a fresh mount of their own.
   */
  private static Metrics measureFuse(Run run, FuseSystem s, Data data, Path mnt, Path caches) throws Exception {
    String tag = s.system() + " [" + s.config() + "]";
    run.log.printf("%s%n", tag);
    String slug = s.system() + "-" + Integer.toHexString(s.config().hashCode());
    Path cache = caches.resolve(slug);
    Path shard = mnt.resolve(s.shardPath());
    double[] ready = new double[run.o.repeats()];
    double[] ttfb = new double[run.o.repeats()];
    Phase cold = null;
    Phase warm = null;
    Phase hot = null;
    Phase many = null;
    Map<String, Object> extra = new LinkedHashMap<>();
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
    List<Path> files = data.files().stream()
        .map(f -> mnt.resolve(s.filesDir().isEmpty() ? f.getFileName().toString() : s.filesDir() + "/" + f.getFileName()))
        .toList();
    for (int r = 0; r < run.o.repeats(); r++) {
      ModelGenerator.deleteTree(cache);
      Files.createDirectories(cache);
      Machine.dropPageCache(run.log);
      try (MountProcess mp = s.mounter().start(mnt, cache, "shard", run.work.resolve("logs/" + slug + "-" + r + ".log"))) {
        ready[r] = mp.awaitVisible(shard, 60_000);
        long t0 = System.nanoTime();
        readFirst(shard, TTFB_BYTES);
        ttfb[r] = (System.nanoTime() - t0) / 1e6;
        run.log.printf(Locale.ROOT, "  mount %d: ready %.1f ms, first 4 KiB %.1f ms%n", r + 1, ready[r], ttfb[r]);
        if (r < run.o.repeats() - 1) {
          continue;
        }
        extra.put("read_ahead_kb", mp.readAheadKb());
        extra.put("mount", mp.mountOptions());
        cold = measure(run, s.system() + ": cold shard (" + shortConfig(s) + ")", false, mp,
            () -> StoreBench.readFile(shard, buf));
        if (s.system().equals("thaw")) {
          awaitWholeFileCopy(run, cache);
        }
        warm = measure(run, s.system() + ": re-read, page cache dropped", true, mp, () -> StoreBench.readFile(shard, buf));
        hot = measure(run, s.system() + ": re-read, page cache warm", false, mp, () -> StoreBench.readFile(shard, buf));
        if (!s.separateFilesMount()) {
          many = measure(run, s.system() + ": 4 readers, files, cold", true, mp, () -> readParallel(files));
        }
      }
    }
    if (s.separateFilesMount()) {
      Path filesCache = caches.resolve(slug + "-files");
      ModelGenerator.deleteTree(filesCache);
      Files.createDirectories(filesCache);
      Machine.dropPageCache(run.log);
      try (MountProcess mp = s.mounter().start(mnt, filesCache, "files", run.work.resolve("logs/" + slug + "-files.log"))) {
        mp.awaitVisible(files.getFirst(), 60_000);
        many = measure(run, s.system() + ": 4 readers, files, cold", false, mp, () -> readParallel(files));
      }
      ModelGenerator.deleteTree(filesCache);
    }
    ModelGenerator.deleteTree(cache);
    extra.put("ready_ms_all", roundAll(ready));
    extra.put("ttfb_ms_all", roundAll(ttfb));
    extra.put("cold_daemon_cpu_s", round(cold.daemonCpuS()));
    extra.put("cold_bench_jvm_cpu_s", round(cold.benchCpuS()));
    extra.put("cold_cpu_busy_pct", Math.round(cold.usage().cpuBusyPct()));
    extra.put("cold_daemon_threads_cpu_s", cold.daemonThreadsCpuS());
    extra.put("warm_daemon_threads_cpu_s", warm.daemonThreadsCpuS());
    extra.put("cpu_s_per_gb_cold", cpuPerGb(cold.daemonCpuS(), cold.bytes()));
    extra.put("cpu_s_per_gb_warm", cpuPerGb(warm.daemonCpuS(), warm.bytes()));
    extra.put("cpu_s_per_gb_hot", cpuPerGb(hot.daemonCpuS(), hot.bytes()));
    return new Metrics(s.config(), median(ready), median(ttfb), cold.gbps(), many.gbps(), warm.gbps(), hot.gbps(), extra);
  }

  private static String shortConfig(FuseSystem s) {
    return switch (s.system()) {
      case "rclone" -> s.config().contains("full") ? "vfs cache full" : "vfs cache off";
      case "s3fs" -> s.config().contains("use_cache") ? "cache on" : "cache off";
      default -> "prefetch auto";
    };
  }

  /**
   * Download, then read: curl with the best stream count fetches 8 MiB ranges to files on the local disk; the data is
   * "ready" when the download ends; then it is read from there (page cache as the download left it).
   */
  private static Metrics measureDownload(Run run, S3ProxyServer s3, int port, Data data, int streams, Path tmp)
      throws Exception {
    run.log.printf("download [curl, %d streams of 8 MiB ranges, to disk, then read]%n", streams);
    List<CurlDownload.Get> shardGets = ranges(s3.httpUrl(RAW_PREFIX, "shard.bin", port), data.shardBytes());
    Path dlShard = tmp.resolve("dl-shard");
    Path dlFiles = tmp.resolve("dl-files");
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
    List<Path> shardParts = new ArrayList<>();
    for (int i = 0; i < shardGets.size(); i++) {
      shardParts.add(dlShard.resolve("part-" + i));
    }
    ModelGenerator.deleteTree(dlShard);
    Machine.dropPageCache(run.log);
    Phase dl = measure(run, "download: curl " + streams + " streams, shard", false, null,
        () -> CurlDownload.run(shardGets, streams, tmp, data.shardBytes(), run.log, dlShard));
    long t0 = System.nanoTime();
    readFirst(shardParts.getFirst(), TTFB_BYTES);
    double ttfb = dl.seconds() * 1e3 + (System.nanoTime() - t0) / 1e6;
    Phase read = measure(run, "download: read the downloaded shard", false, null, () -> readAll(shardParts, buf));
    double cold = data.shardBytes() / 1e9 / (dl.seconds() + read.seconds());
    Phase warm = measure(run, "download: re-read, page cache dropped", true, null, () -> readAll(shardParts, buf));
    Phase hot = measure(run, "download: re-read, page cache warm", false, null, () -> readAll(shardParts, buf));
    ModelGenerator.deleteTree(dlShard);

    // the files: all of them in 8 MiB ranges over the same streams, then four readers
    List<CurlDownload.Get> fileGets = new ArrayList<>();
    List<List<Path>> partsPerFile = new ArrayList<>();
    for (Path f : data.files()) {
      List<Path> parts = new ArrayList<>();
      for (CurlDownload.Get g : ranges(s3.httpUrl(RAW_PREFIX, "files/" + f.getFileName(), port), Files.size(f))) {
        parts.add(dlFiles.resolve("part-" + fileGets.size()));
        fileGets.add(g);
      }
      partsPerFile.add(parts);
    }
    ModelGenerator.deleteTree(dlFiles);
    Machine.dropPageCache(run.log);
    Phase dlf = measure(run, "download: curl " + streams + " streams, files", false, null,
        () -> CurlDownload.run(fileGets, streams, tmp, data.filesBytes(), run.log, dlFiles));
    Phase readf = measure(run, "download: 4 readers, downloaded files", false, null, () -> readGroups(partsPerFile));
    double many = data.filesBytes() / 1e9 / (dlf.seconds() + readf.seconds());
    ModelGenerator.deleteTree(dlFiles);
    Map<String, Object> extra = new LinkedHashMap<>();
    extra.put("download_shard_gbps", round(dl.gbps()));
    extra.put("download_files_gbps", round(dlf.gbps()));
    extra.put("cpu_s_per_gb_cold", cpuPerGb(dl.daemonCpuS(), dl.bytes()));
    extra.put("cpu_s_per_gb_warm", 0.0); // no process between the reader and the kernel: the files are on local disk
    extra.put("cpu_s_per_gb_hot", 0.0);
    extra.put("note", "ready = the shard's download time; cold and many_files = bytes / (download + read); cpu_s_per_gb"
        + " = curl's CPU seconds per GB downloaded (warm and hot: no process, 0)");
    return new Metrics("curl, " + streams + " streams of 8 MiB ranges, to local disk, then read", dl.seconds() * 1e3, ttfb,
        cold, many, warm.gbps(), hot.gbps(), extra);
  }

  // ---------------------------------------------------------------- 1 TB manifest

  /**
   * Mounts a synthetic 1 TiB manifest (128 files of 8 GiB, made-up chunk hashes: no bytes exist) in this JVM over a reader whose origin is
   * an empty directory that is never read, {@code times} times: the time from the {@link LazyMount#mount} call until a
   * file is visible. The first mount also pays for loading the FUSE binding's classes; the median is the figure.
   */
  static Map<String, Object> mountSynthetic1Tb(Path work, int times, PrintStream log) throws Exception {
    int chunk = Pusher.DEFAULT_CHUNK_SIZE;
    int files = 128;
    int chunksPerFile = (int) ((8L << 30) / chunk);
    long t0 = System.nanoTime();
    Manifest.Builder b = Manifest.builder(chunk);
    List<Integer> lengths = java.util.Collections.nCopies(chunksPerFile, chunk);
    for (int f = 0; f < files; f++) {
      List<byte[]> hashes = new ArrayList<>(chunksPerFile);
      for (int c = 0; c < chunksPerFile; c++) {
        byte[] h = new byte[32];
        ByteBuffer.wrap(h).putInt(f).putInt(c).putLong(0x7ea5eedL);
        hashes.add(h);
      }
      b.file(String.format("model-%05d-of-%05d.safetensors", f + 1, files), 0644, hashes, lengths);
    }
    Manifest m = b.build();
    double buildMs = (System.nanoTime() - t0) / 1e6;
    Path base = work.resolve("synthetic-1tb");
    ModelGenerator.deleteTree(base);
    Path originDir = Files.createDirectories(base.resolve("origin"));
    Path mnt = base.resolve("mnt");
    String first = m.files().getFirst().path();
    double[] ms = new double[times];
    double openMs;
    try (Origin origin = Origins.open(originDir.toUri().toString());
        ChunkCache cache = ChunkCache.open(base.resolve("cache"), 1L << 30)) {
      long t1 = System.nanoTime();
      try (ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT.withRecordProfile(false))) {
        openMs = (System.nanoTime() - t1) / 1e6;
        for (int i = 0; i < times; i++) {
          MountProcess.clear(mnt);
          Files.createDirectories(mnt);
          long s = System.nanoTime();
          try (LazyMount lm = LazyMount.mount(reader, mnt, MountOptions.DEFAULT.withName("thaw-bench-1tb"))) {
            Path p = lm.mountPoint().resolve(first);
            while (!Files.exists(p)) {
              LockSupport.parkNanos(100_000);
            }
            ms[i] = (System.nanoTime() - s) / 1e6;
          }
        }
      }
    } finally {
      MountProcess.clear(mnt);
      ModelGenerator.deleteTree(base);
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("bytes", m.totalBytes());
    out.put("files", files);
    out.put("chunks", (long) files * chunksPerFile);
    out.put("median_ms", round(median(ms)));
    out.put("first_ms", round(ms[0]));
    out.put("all_ms", roundAll(ms));
    out.put("manifest_build_ms", round(buildMs));
    out.put("reader_open_ms", round(openMs));
    log.printf(Locale.ROOT, "thaw: 1 TiB synthetic manifest (%d files, %d chunks): mount until a file is visible %s ms"
        + " (median %.1f); manifest built in %.0f ms, reader opened in %.0f ms%n", files, (long) files * chunksPerFile,
        Arrays.toString(roundAll(ms).toArray()), median(ms), buildMs, openMs);
    return out;
  }

  // ---------------------------------------------------------------- reading

  @FunctionalInterface
  interface Work {
    long run() throws Exception;
  }

  /** CPU seconds of the children {@code pid} has waited for (cutime + cstime). */
  private static double childrenCpuSeconds(long pid) {
    double[] t = MountProcess.cpuTimes(pid);
    return t[2] + t[3];
  }

  /** CPU seconds per GB delivered: the mount daemon's or the downloader's, from /proc. */
  private static double cpuPerGb(double cpuSeconds, long bytes) {
    return bytes <= 0 ? 0 : round(cpuSeconds / (bytes / 1e9));
  }

  private static Phase measure(Run run, String name, boolean dropFirst, MountProcess daemon, Work work) throws Exception {
    if (dropFirst) {
      Machine.dropPageCache(run.log);
    }
    long self = ProcessHandle.current().pid();
    // no daemon: the processes this JVM starts and waits for (curl) are the downloader, their CPU its children's
    double d0 = daemon == null ? childrenCpuSeconds(self) : daemon.cpuSeconds();
    double b0 = MountProcess.cpuSeconds(self);
    Map<String, double[]> threads0 = daemon == null ? Map.of() : MountProcess.threadCpuSeconds(daemon.pid());
    Machine.Counters before = Machine.Counters.now();
    long t0 = System.nanoTime();
    long bytes = work.run();
    double secs = (System.nanoTime() - t0) / 1e9;
    Machine.Usage u = Machine.Counters.now().since(before);
    Map<String, Map<String, Double>> threads = new java.util.TreeMap<>();
    if (daemon != null) {
      MountProcess.threadCpuSeconds(daemon.pid()).forEach((t, s) -> {
        double[] s0 = threads0.getOrDefault(t, new double[2]);
        double user = round(s[0] - s0[0]);
        double sys = round(s[1] - s0[1]);
        if (user + sys > 0) {
          threads.put(t, Map.of("user", user, "sys", sys));
        }
      });
    }
    Phase p = new Phase(name, bytes, secs, u, (daemon == null ? childrenCpuSeconds(self) : daemon.cpuSeconds()) - d0,
        MountProcess.cpuSeconds(self) - b0, threads);
    run.phases.add(p);
    run.log.printf(Locale.ROOT, "  %-52s %6.3f GB/s %6.2f s [%s; daemon cpu %.2f s, bench jvm cpu %.2f s]%n", name,
        p.gbps(), secs, u, p.daemonCpuS(), p.benchCpuS());
    return p;
  }

  static void readFirst(Path p, int n) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(n);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
      while (b.hasRemaining() && ch.read(b) > 0) {
        // keep reading until n bytes or the end
      }
    }
    if (b.hasRemaining()) {
      throw new IOException("short read of the first " + n + " bytes of " + p);
    }
  }

  private static long readAll(List<Path> parts, ByteBuffer buf) throws IOException {
    long total = 0;
    for (Path p : parts) {
      total += StoreBench.readFile(p, buf);
    }
    return total;
  }

  /** Four readers, file {@code i} to reader {@code i % 4}, each front to back with 1 MiB reads. */
  static long readParallel(List<Path> files) throws Exception {
    List<List<Path>> groups = new ArrayList<>();
    for (Path f : files) {
      groups.add(List.of(f));
    }
    return readGroups(groups);
  }

  /** Reads each group (a file, or the parts of one) front to back; {@link #READERS} groups at a time. */
  private static long readGroups(List<List<Path>> groups) throws Exception {
    try (ExecutorService pool = Executors.newFixedThreadPool(READERS)) {
      List<Future<Long>> fs = new ArrayList<>();
      for (int r = 0; r < READERS; r++) {
        int reader = r;
        fs.add(pool.submit(() -> {
          ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
          long total = 0;
          for (int i = reader; i < groups.size(); i += READERS) {
            total += readAll(groups.get(i), buf);
          }
          return total;
        }));
      }
      long total = 0;
      for (Future<Long> f : fs) {
        total += f.get();
      }
      return total;
    }
  }

  // ---------------------------------------------------------------- output

  private static void goalAtLeast(Map<String, Object> ratios, Map<String, Object> met, Map<String, Object> goals,
      String name, double ratio, double goal) {
    ratios.put(name, round(ratio));
    met.put(name, ratio >= goal);
    goals.put(name, ">= " + goal);
  }

  private static void goalAtMost(Map<String, Object> ratios, Map<String, Object> met, Map<String, Object> goals,
      String name, double ratio, String goal, boolean ok) {
    ratios.put(name, round(ratio));
    met.put(name, ok);
    goals.put(name, goal);
  }

  static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }

  static double round(double v) {
    return StoreBench.round(v);
  }

  static List<Double> roundAll(double[] v) {
    return Arrays.stream(v).map(MountBench::round).boxed().toList();
  }

  private static Map<String, Double> roundAll(Map<String, Double> m) {
    Map<String, Double> out = new LinkedHashMap<>();
    m.forEach((k, v) -> out.put(k, round(v)));
    return out;
  }

  private static void printTable(Run run, Map<String, Metrics> best, Map<String, Object> d, Map<String, Object> ratios,
      Map<String, Object> met) {
    PrintStream log = run.log;
    log.println();
    log.printf(Locale.ROOT, "%-52s %8s %8s %5s %7s %7s %7s %7s %7s%n", "phase", "GB/s", "seconds", "cpu%", "iowait%",
        "disk r", "lo MB/s", "daemon", "jvm");
    for (Phase p : run.phases) {
      Machine.Usage u = p.usage();
      log.printf(Locale.ROOT, "%-52s %8.3f %8.2f %5.0f %7.0f %7.0f %7.0f %7.2f %7.2f%n", p.name(), p.gbps(), p.seconds(),
          u.cpuBusyPct(), u.iowaitPct(), u.diskReadMBps(), u.loopbackMBps(), p.daemonCpuS(), p.benchCpuS());
    }
    log.println();
    log.printf(Locale.ROOT, "%-9s %9s %9s %9s %11s %9s %9s  %s%n", "system", "ready ms", "ttfb ms", "cold", "many files",
        "warm", "hot", "config");
    best.forEach((s, m) -> log.printf(Locale.ROOT, "%-9s %9.1f %9.1f %9.3f %11.3f %9.3f %9.3f  %s%n", s, m.readyMs(),
        m.ttfbMs(), m.coldGbps(), m.manyFilesGbps(), m.warmGbps(), m.hotGbps(), m.config()));
    log.printf(Locale.ROOT, "thaw_mount_1tb_ms %s, best parallel download %.3f, local disk %.3f, page cache %.3f GB/s%n",
        d.get("thaw_mount_1tb_ms"), (Double) d.get("best_parallel_download_gbps"), (Double) d.get("local_disk_read_gbps"),
        (Double) d.get("page_cache_read_gbps"));
    log.println();
    log.printf("%-34s %8s  %s%n", "goal", "ratio", "met");
    ratios.forEach((k, v) -> log.printf(Locale.ROOT, "%-34s %8.3f  %s%n", k, (Double) v, met.get(k)));
  }

  /**
   * Runs without the CLI: {@code [--shard-size 2g] [--files 20] [--file-size 100m] [--repeats 3] [--block-size 1m]
   * [--systems thaw,rclone,s3fs,download] [--work-dir DIR] [--json]}.
   */
  public static void main(String[] args) throws Exception {
    Options d = Options.defaults();
    long shard = d.shardBytes();
    int files = d.fileCount();
    long fileSize = d.fileBytes();
    int repeats = d.repeats();
    int blockSize = d.blockSize();
    Set<String> systems = d.systems();
    Path dir = d.workDir();
    boolean json = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--shard-size" -> shard = StoreBench.parseSize(args[++i]);
        case "--files" -> files = Integer.parseInt(args[++i]);
        case "--file-size" -> fileSize = StoreBench.parseSize(args[++i]);
        case "--repeats" -> repeats = Integer.parseInt(args[++i]);
        case "--block-size" -> blockSize = Math.toIntExact(StoreBench.parseSize(args[++i]));
        case "--systems" -> systems = new LinkedHashSet<>(List.of(args[++i].split(",")));
        case "--work-dir" -> dir = Path.of(args[++i]);
        case "--json" -> json = true;
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    Result r = run(new Options(shard, files, fileSize, repeats, systems, dir, null, blockSize), System.err);
    if (json) {
      System.out.println(r.toJson());
    }
  }
}
