package dev.thaw.bench;

import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import dev.thaw.testkit.NginxServer;
import dev.thaw.testkit.S3ProxyServer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * The store's end-to-end benchmark ({@code thaw bench store}): on one generated model, in one run, the cold load
 * through {@link ModelReader} (profile replayed) from a throttled nginx origin and from S3Proxy, against curl
 * downloads of the same chunk objects (one stream; 8, 16 and 32 streams) and a plain local disk read; the warm load
 * from the chunk cache; push and re-push. The page cache is dropped before every measurement that should read disk.
 * Rates are GB/s = 10^9 bytes per second.
 */
public final class StoreBench {
  private StoreBench() {}

  static final ModelName NAME = ModelName.parse("bench:v1");
  static final int READ_SIZE = 1 << 20;
  static final int[] STREAMS = {8, 16, 32};

  /**
   * @param modelBytes size of the generated model (shards plus small files)
   * @param chunkSize chunk size for push
   * @param parallelism the reader's parallel range requests
   * @param pushConcurrency chunks hashed and uploaded at once by push
   * @param workDir where the model, origins and caches live (the model is kept and reused)
   */
  public record Options(long modelBytes, int chunkSize, int parallelism, int pushConcurrency, Path workDir) {
    public static Options defaults() {
      return new Options(2L << 30, Pusher.DEFAULT_CHUNK_SIZE, 16, 8, Path.of("target", "bench-store"));
    }

    public Options {
      if (modelBytes < (1 << 20) || chunkSize < 4096 || parallelism < 1 || pushConcurrency < 1) {
        throw new IllegalArgumentException("model >= 1 MiB, chunk >= 4 KiB, parallelism and push concurrency >= 1");
      }
    }
  }

  /** The measured figures (GB/s), plus every detail in {@link #details()} (what {@link #toJson()} prints). */
  public record Result(
      long bytes,
      double coldLoadGbpsThrottled,
      double bestParallelDownloadGbpsThrottled,
      double singleStreamDownloadGbpsThrottled,
      double coldLoadGbpsS3,
      double bestParallelDownloadGbpsS3,
      double warmLoadGbps,
      double localDiskReadGbps,
      double repushGbps,
      Map<String, Object> details) {

    public String toJson() {
      try {
        return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(details);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new IllegalStateException("bench result is not serialisable", e);
      }
    }
  }

  /** A timed phase: its rate and what the machine was busy with meanwhile. */
  record Phase(String name, long bytes, double seconds, Machine.Usage usage) {
    double gbps() {
      return bytes / 1e9 / seconds;
    }
  }

  public static Result run(Options o, PrintStream log) throws Exception {
    long runStart = System.nanoTime();
    Path work = o.workDir().toAbsolutePath();
    Files.createDirectories(work);
    List<Phase> phases = new ArrayList<>();
    log.printf("thaw bench store: model %.2f GB, chunk %d MiB, reader parallelism %d, work dir %s%n",
        o.modelBytes() / 1e9, o.chunkSize() >> 20, o.parallelism(), work);
    log.printf("machine: %d cores, %s, %.1f GiB RAM, %s%n", Machine.nproc(), Machine.cpuModel(),
        Machine.memTotalBytes() / (double) (1L << 30), Machine.kernel());

    Path model = ModelGenerator.ensure(work, o.modelBytes(), log);
    long modelBytes = dirBytes(model);
    String runId = "c" + (o.chunkSize() >> 10) + "k";
    Path originDir = work.resolve("origin-" + runId);
    Path s3Dir = work.resolve("s3-" + runId);
    Path caches = work.resolve("cache-" + runId);
    Path tmp = work.resolve("tmp");
    for (Path p : List.of(originDir, s3Dir, caches)) {
      ModelGenerator.deleteTree(p);
    }
    boolean dropped = Machine.dropPageCache(log);

    // 1. local disk: the bar for warm load and re-push
    Phase disk = measure("local disk read (1 MiB reads)", log, true, phases, () -> readDir(model));

    // 2. push into a fresh file origin, then the unchanged re-push
    String fileUri = originDir.toUri().toString();
    Manifest manifest;
    Pusher.Result[] pushed = new Pusher.Result[1];
    try (Origin fileOrigin = Origins.open(fileUri)) {
      measure("push to file origin", log, true, phases, () -> {
        pushed[0] = new Pusher(fileOrigin, o.chunkSize(), o.pushConcurrency(), dev.thaw.store.PushProgress.NONE)
            .push(model, NAME);
        return pushed[0].bytesHashed();
      });
      Phase repush = measure("re-push unchanged (hash all, upload none)", log, true, phases, () -> {
        Pusher.Result r = new Pusher(fileOrigin, o.chunkSize(), o.pushConcurrency(), dev.thaw.store.PushProgress.NONE)
            .push(model, NAME);
        if (r.bytesUploaded() != 0) {
          throw new IllegalStateException("re-push uploaded " + r.bytesUploaded() + " bytes");
        }
        return r.bytesHashed();
      });
      ModelStore store = new ModelStore(fileOrigin);
      manifest = store.resolve(NAME);
      // The profile a model server's load would record: every file front to back, in manifest order.
      store.saveProfile(manifestOrderProfile(manifest), null);
    }
    List<ChunkRef> chunks = new ArrayList<>();
    for (FileEntry f : manifest.files()) {
      chunks.addAll(f.chunks());
    }
    long chunkBytes = chunks.stream().mapToLong(ChunkRef::length).sum();
    long cacheMax = 2 * modelBytes + (1L << 30);

    Map<String, Object> d = new LinkedHashMap<>();
    Map<String, Double> parallelThrottled = new LinkedHashMap<>();
    Map<String, Double> parallelS3 = new LinkedHashMap<>();
    Map<String, Double> parallelThrottledNull = new LinkedHashMap<>();
    Map<String, Double> parallelS3Null = new LinkedHashMap<>();
    String throttleMethod;
    double throttleCheckMBps;
    Phase single;
    Phase coldThrottled;
    Phase warm;
    // 3. throttled nginx origin
    writeProbe(originDir.resolve("probe.bin"));
    try (NginxServer nginx = NginxServer.start(originDir, work.resolve("nginx-" + runId), log);
        Throttle throttle = Throttle.install(nginx.port(), log)) {
      throttleMethod = throttle.method();
      String base = "http://127.0.0.1:" + throttle.port() + "/";
      List<CurlDownload.Get> probe = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        probe.add(new CurlDownload.Get(base + "probe.bin", (long) i << 23, ((long) (i + 1) << 23) - 1));
      }
      CurlDownload.run(probe.subList(0, 1), 1, tmp, 8 << 20, log); // warm the probe file into memory
      long t0 = System.nanoTime();
      CurlDownload.run(probe, 1, tmp, 64L << 20, log);
      throttleCheckMBps = (64L << 20) / 1e6 / ((System.nanoTime() - t0) / 1e9);
      log.printf("throttle check: one connection, 8 x 8 MiB ranges: %.1f MB/s (target %.0f MB/s)%n", throttleCheckMBps,
          Throttle.RATE_BYTES / 1e6);

      List<CurlDownload.Get> gets = chunks.stream().map(c -> CurlDownload.Get.whole(base + c.objectKey())).toList();
      Path downloads = tmp.resolve("downloads");
      single = measure("throttled: curl, 1 stream, to disk", log, true, phases,
          () -> CurlDownload.run(gets, 1, tmp, chunkBytes, log, downloads));
      ModelGenerator.deleteTree(downloads);
      for (int n : STREAMS) {
        Phase p = measure("throttled: curl, " + n + " streams, to disk", log, true, phases,
            () -> CurlDownload.run(gets, n, tmp, chunkBytes, log, downloads));
        ModelGenerator.deleteTree(downloads);
        parallelThrottled.put(String.valueOf(n), p.gbps());
        Phase q = measure("throttled: curl, " + n + " streams, /dev/null", log, true, phases,
            () -> CurlDownload.run(gets, n, tmp, chunkBytes, log));
        parallelThrottledNull.put(String.valueOf(n), q.gbps());
      }
      coldThrottled = measure("throttled: cold load through reader (profile)", log, true, phases,
          () -> coldLoad(base, caches.resolve("throttled"), cacheMax, o.parallelism()));
    }
    // 4. warm: every chunk in the local cache, page cache dropped
    warm = measure("warm load from chunk cache", log, true, phases,
        () -> warmLoad(fileUri, caches.resolve("throttled"), cacheMax, o.parallelism()));
    ModelGenerator.deleteTree(caches.resolve("throttled"));

    // 5. S3Proxy, unthrottled
    Phase coldS3;
    Phase singleS3;
    Phase pushS3;
    try (S3ProxyServer s3 = S3ProxyServer.start(s3Dir)) {
      String s3Uri = s3.originUri("store/");
      try (Origin s3Origin = Origins.open(s3Uri)) {
        pushS3 = measure("push to S3Proxy", log, true, phases,
            () -> new Pusher(s3Origin, o.chunkSize(), o.pushConcurrency(), dev.thaw.store.PushProgress.NONE)
                .push(model, NAME).bytesHashed());
        new ModelStore(s3Origin).saveProfile(manifestOrderProfile(manifest), null);
      }
      List<CurlDownload.Get> gets = chunks.stream()
          .map(c -> CurlDownload.Get.whole(s3.httpUrl("store/", c.objectKey()))).toList();
      Path downloads = tmp.resolve("downloads");
      singleS3 = measure("S3Proxy: curl, 1 stream, to disk", log, true, phases,
          () -> CurlDownload.run(gets, 1, tmp, chunkBytes, log, downloads));
      ModelGenerator.deleteTree(downloads);
      for (int n : STREAMS) {
        Phase p = measure("S3Proxy: curl, " + n + " streams, to disk", log, true, phases,
            () -> CurlDownload.run(gets, n, tmp, chunkBytes, log, downloads));
        ModelGenerator.deleteTree(downloads);
        parallelS3.put(String.valueOf(n), p.gbps());
        Phase q = measure("S3Proxy: curl, " + n + " streams, /dev/null", log, true, phases,
            () -> CurlDownload.run(gets, n, tmp, chunkBytes, log));
        parallelS3Null.put(String.valueOf(n), q.gbps());
      }
      coldS3 = measure("S3Proxy: cold load through reader (profile)", log, true, phases,
          () -> coldLoad(s3Uri, caches.resolve("s3"), cacheMax, o.parallelism()));
    }
    ModelGenerator.deleteTree(caches);

    Phase repush = phases.stream().filter(p -> p.name().startsWith("re-push")).findFirst().orElseThrow();
    double bestThrottled = parallelThrottled.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
    double bestS3 = parallelS3.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);

    d.put("bytes", modelBytes);
    d.put("cold_load_gbps_throttled", round(coldThrottled.gbps()));
    d.put("best_parallel_download_gbps_throttled", round(bestThrottled));
    d.put("single_stream_download_gbps_throttled", round(single.gbps()));
    d.put("cold_load_gbps_s3", round(coldS3.gbps()));
    d.put("best_parallel_download_gbps_s3", round(bestS3));
    d.put("warm_load_gbps", round(warm.gbps()));
    d.put("local_disk_read_gbps", round(disk.gbps()));
    d.put("repush_gbps", round(repush.gbps()));
    d.put("push_gbps", round(phases.stream().filter(p -> p.name().equals("push to file origin")).findFirst()
        .orElseThrow().gbps()));
    d.put("push_gbps_s3", round(pushS3.gbps()));
    d.put("single_stream_download_gbps_s3", round(singleS3.gbps()));
    d.put("parallel_download_gbps_throttled", roundAll(parallelThrottled));
    d.put("parallel_download_gbps_s3", roundAll(parallelS3));
    d.put("best_parallel_download_gbps_throttled_devnull", round(max(parallelThrottledNull)));
    d.put("best_parallel_download_gbps_s3_devnull", round(max(parallelS3Null)));
    d.put("parallel_download_gbps_throttled_devnull", roundAll(parallelThrottledNull));
    d.put("parallel_download_gbps_s3_devnull", roundAll(parallelS3Null));

    Map<String, Object> ratios = new LinkedHashMap<>();
    Map<String, Object> met = new LinkedHashMap<>();
    goal(ratios, met, "cold_vs_best_parallel_throttled", coldThrottled.gbps() / bestThrottled, 0.95);
    goal(ratios, met, "cold_vs_single_stream_throttled", coldThrottled.gbps() / single.gbps(), 5.0);
    goal(ratios, met, "cold_vs_best_parallel_s3", coldS3.gbps() / bestS3, 0.95);
    goal(ratios, met, "warm_vs_local_disk", warm.gbps() / disk.gbps(), 0.9);
    goal(ratios, met, "repush_vs_local_disk", repush.gbps() / disk.gbps(), 0.8);
    d.put("ratios", ratios);
    d.put("goals", Map.of(
        "cold_vs_best_parallel_throttled", 0.95, "cold_vs_single_stream_throttled", 5.0,
        "cold_vs_best_parallel_s3", 0.95, "warm_vs_local_disk", 0.9, "repush_vs_local_disk", 0.8));
    d.put("goals_met", met);

    Map<String, Object> setup = new LinkedHashMap<>();
    setup.put("chunk_size", o.chunkSize());
    setup.put("chunks", chunks.size());
    setup.put("files", manifest.files().size());
    setup.put("reader_parallelism", o.parallelism());
    setup.put("reader_read_size", READ_SIZE);
    setup.put("push_concurrency", o.pushConcurrency());
    setup.put("throttle", throttleMethod);
    setup.put("throttle_rate_mbps_per_connection", Throttle.RATE_BYTES / 1e6);
    setup.put("throttle_burst_bytes", Throttle.BURST_BYTES);
    setup.put("throttle_check_mbps_one_connection", round(throttleCheckMBps));
    setup.put("downloads", "curl processes, each fetching its share of the chunk objects (the same bytes the reader"
        + " fetches) over one kept-alive connection; the goals compare against downloads to files on local disk (where"
        + " a download lands, and what the cold load also writes: its cache); *_devnull is the network alone");
    setup.put("page_cache_dropped", dropped);
    d.put("setup", setup);

    d.put("machine", Machine.description());

    List<Object> ph = new ArrayList<>();
    for (Phase p : phases) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("name", p.name());
      m.put("bytes", p.bytes());
      m.put("seconds", round(p.seconds()));
      m.put("gbps", round(p.gbps()));
      p.usage().putInto(m);
      ph.add(m);
    }
    d.put("phases", ph);
    d.put("elapsed_s", round((System.nanoTime() - runStart) / 1e9));

    printTable(log, phases, ratios, met);
    return new Result(modelBytes, coldThrottled.gbps(), bestThrottled, single.gbps(), coldS3.gbps(), bestS3, warm.gbps(),
        disk.gbps(), repush.gbps(), d);
  }

  private static double max(Map<String, Double> m) {
    return m.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
  }

  /** Parses sizes like {@code 2g}, {@code 8m}, {@code 512k} or plain bytes. */
  public static long parseSize(String s) {
    String t = s.trim().toLowerCase(Locale.ROOT).replace("ib", "").replace("b", "");
    long mul = switch (t.isEmpty() ? ' ' : t.charAt(t.length() - 1)) {
      case 'k' -> 1L << 10;
      case 'm' -> 1L << 20;
      case 'g' -> 1L << 30;
      default -> 1;
    };
    String num = mul == 1 ? t : t.substring(0, t.length() - 1);
    return (long) (Double.parseDouble(num) * mul);
  }

  /**
   * Runs without the CLI: {@code [--size 2g] [--chunk-size 8m] [--parallelism 32] [--push-concurrency 8]
   * [--work-dir DIR] [--json]}.
   */
  public static void main(String[] args) throws Exception {
    Options d = Options.defaults();
    long size = d.modelBytes();
    long chunk = d.chunkSize();
    int par = d.parallelism();
    int push = d.pushConcurrency();
    Path dir = d.workDir();
    boolean json = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--size" -> size = parseSize(args[++i]);
        case "--chunk-size" -> chunk = parseSize(args[++i]);
        case "--parallelism" -> par = Integer.parseInt(args[++i]);
        case "--push-concurrency" -> push = Integer.parseInt(args[++i]);
        case "--work-dir" -> dir = Path.of(args[++i]);
        case "--json" -> json = true;
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    Result r = run(new Options(size, Math.toIntExact(chunk), par, push, dir), System.err);
    if (json) {
      System.out.println(r.toJson());
    }
  }

  private static void goal(Map<String, Object> ratios, Map<String, Object> met, String name, double ratio, double goal) {
    ratios.put(name, round(ratio));
    met.put(name, ratio >= goal);
  }

  @FunctionalInterface
  interface Work {
    long run() throws Exception;
  }

  private static Phase measure(String name, PrintStream log, boolean cold, List<Phase> phases, Work work)
      throws Exception {
    if (cold) {
      Machine.dropPageCache(log);
    }
    Machine.Counters before = Machine.Counters.now();
    long t0 = System.nanoTime();
    long bytes = work.run();
    double secs = (System.nanoTime() - t0) / 1e9;
    Phase p = new Phase(name, bytes, secs, Machine.Counters.now().since(before));
    phases.add(p);
    log.printf(Locale.ROOT, "  %-48s %6.3f GB/s  %6.2f s  [%s]%n", name, p.gbps(), secs, p.usage());
    return p;
  }

  /** Cold load: fresh cache, manifest and profile resolved, profile replayed, every file read front to back. */
  private static long coldLoad(String originUri, Path cacheDir, long cacheMax, int parallelism) throws Exception {
    ModelGenerator.deleteTree(cacheDir);
    try (Origin origin = Origins.open(originUri, dev.thaw.store.RetryPolicy.DEFAULT, Math.max(64, parallelism * 2));
        ChunkCache cache = ChunkCache.open(cacheDir, cacheMax)) {
      ModelStore store = new ModelStore(origin);
      Manifest m = store.resolve(NAME);
      AccessProfile profile = store.profile(m, null)
          .orElseThrow(() -> new IOException("no access profile at " + origin.uri()));
      try (ModelReader reader = ModelReader.open(m, origin, cache,
          ReaderOptions.DEFAULT.withParallelism(parallelism).withRecordProfile(false))) {
        reader.prefetch(profile);
        long n = readModel(reader, m);
        if (reader.bytesFetched() < m.totalBytes()) {
          throw new IllegalStateException("cold load fetched only " + reader.bytesFetched() + " bytes");
        }
        return n;
      }
    }
  }

  /** Warm load: the cache already holds every chunk; nothing may be fetched. */
  private static long warmLoad(String originUri, Path cacheDir, long cacheMax, int parallelism) throws Exception {
    try (Origin origin = Origins.open(originUri); ChunkCache cache = ChunkCache.open(cacheDir, cacheMax)) {
      ModelStore store = new ModelStore(origin);
      Manifest m = store.resolve(NAME);
      AccessProfile profile = store.profile(m, null).orElseThrow();
      try (ModelReader reader = ModelReader.open(m, origin, cache,
          ReaderOptions.DEFAULT.withParallelism(parallelism).withRecordProfile(false))) {
        reader.prefetch(profile);
        long n = readModel(reader, m);
        if (reader.bytesFetched() != 0) {
          throw new IllegalStateException("warm load fetched " + reader.bytesFetched() + " bytes from the origin");
        }
        return n;
      }
    }
  }

  private static long readModel(ModelReader reader, Manifest m) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
    long total = 0;
    for (FileEntry f : m.files()) {
      try (ModelReader.ModelFile file = reader.open(f.path())) {
        long pos = 0;
        while (pos < file.size()) {
          buf.clear();
          int n = file.read(pos, buf);
          if (n <= 0) {
            throw new IOException("short read of " + f.path() + " at " + pos);
          }
          pos += n;
        }
        total += pos;
      }
    }
    if (total != m.totalBytes()) {
      throw new IOException("read " + total + " bytes, the manifest has " + m.totalBytes());
    }
    return total;
  }

  private static long readDir(Path dir) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_SIZE);
    long total = 0;
    List<Path> files;
    try (Stream<Path> s = Files.list(dir)) {
      files = s.sorted().toList();
    }
    for (Path p : files) {
      total += readFile(p, buf);
    }
    return total;
  }

  /** Reads a file front to back through {@code buf} (its capacity is the read size); returns the bytes read. */
  static long readFile(Path p, ByteBuffer buf) throws IOException {
    long total = 0;
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
      int n;
      while ((n = ch.read(buf.clear())) > 0) {
        total += n;
      }
    }
    return total;
  }

  private static long dirBytes(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.mapToLong(p -> p.toFile().length()).sum();
    }
  }

  static AccessProfile manifestOrderProfile(Manifest m) {
    List<AccessProfile.Run> runs = new ArrayList<>();
    for (FileEntry f : m.files()) {
      if (f.chunkCount() > 0) {
        runs.add(new AccessProfile.Run(f.path(), 0, f.chunkCount()));
      }
    }
    return new AccessProfile(m.digest(), runs);
  }

  private static void writeProbe(Path p) throws IOException {
    byte[] b = new byte[64 << 20];
    new SplittableRandom(42).nextBytes(b);
    Files.write(p, b);
  }

  static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  private static Map<String, Double> roundAll(Map<String, Double> m) {
    Map<String, Double> out = new LinkedHashMap<>();
    m.forEach((k, v) -> out.put(k, round(v)));
    return out;
  }

  private static void printTable(PrintStream log, List<Phase> phases, Map<String, Object> ratios,
      Map<String, Object> met) {
    log.println();
    log.printf(Locale.ROOT, "%-48s %8s %8s %6s %7s %8s %8s %8s%n", "phase (page cache dropped before each)", "GB/s",
        "seconds", "cpu%", "iowait%", "disk r", "disk w", "lo MB/s");
    for (Phase p : phases) {
      Machine.Usage u = p.usage();
      log.printf(Locale.ROOT, "%-48s %8.3f %8.2f %6.0f %7.0f %8.0f %8.0f %8.0f%n", p.name(), p.gbps(), p.seconds(),
          u.cpuBusyPct(), u.iowaitPct(), u.diskReadMBps(), u.diskWriteMBps(), u.loopbackMBps());
    }
    log.println();
    log.printf("%-36s %8s  %s%n", "goal", "ratio", "met");
    ratios.forEach((k, v) -> log.printf(Locale.ROOT, "%-36s %8.3f  %s%n", k, (Double) v, met.get(k)));
  }
}
