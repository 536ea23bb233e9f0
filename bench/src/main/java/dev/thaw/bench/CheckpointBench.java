package dev.thaw.bench;

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
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code thaw bench checkpoint}: ort-server on a generated model, each time from the exec of the first command to the
 * first correct answer, page cache dropped: a cold boot with the model on local disk; {@code thaw restore} with the
 * images on local disk; {@code thaw restore} on a new node with the images at the emulated origin (S3Proxy behind
 * the 100 MB/s-per-connection throttle of {@code thaw bench store}); the dump time and image bytes; and the floors:
 * reading from local disk every byte a restore must read before it answers (its images, and what the restored server
 * reads from mapped files: its resident file-backed pages when it first answered), and those image bytes over the
 * best parallel download rate of that origin.
 *
 * <p>Twice: the server as it is (ONNX Runtime copies and repacks every weight into its heap, so the weights are in the
 * image) and with {@code session.disable_prepacking=1} (weights stay mapped from the model files, which the restored
 * process maps again instead of carrying them in the image).
 *
 * <p>And each of the two again with the model on a Thaw mount, as a node serves it (the model pushed to the same
 * origin, each run on a fresh mount with an empty cache; see {@link SnapshotRuns}): a boot on the mount; a restore from
 * local images after a fresh mount of the model; a restore on a new node, where {@code thaw restore} mounts the model
 * itself; and the restore from local images once more with the fresh mount's prefetch off, which shows what
 * prefetching the model's profile costs or saves. Weights mapped from the mount stream from the origin again after
 * a restore.
 */
public final class CheckpointBench {
  static final String PREFIX = "snapshots/";
  /** The model's name at the origin, for the runs on a Thaw mount. */
  static final ModelName MODEL_NAME = ModelName.parse("bench/mlp:v1");
  private static final Map<String, String> CREDENTIALS = Map.of("AWS_ACCESS_KEY_ID", "thaw-bench",
      "AWS_SECRET_ACCESS_KEY", "thaw-bench-secret", "AWS_REGION", "us-east-1");

  private CheckpointBench() {}

  public record Options(long modelBytes, long seed, int runs, Path workDir, List<String> thawCommand) {
    public Options {
      if (runs < 1) {
        throw new IllegalArgumentException("--runs must be at least 1");
      }
    }
  }

  public record Result(Map<String, Object> summary, String table) {}

  public static Result run(Options o, PrintStream log) throws Exception {
    Path work = o.workDir().toAbsolutePath();
    Files.createDirectories(work);
    Tools.require("curl", "curl", log);
    ColdStartDemo.Options demo = new ColdStartDemo.Options(o.modelBytes(), o.seed(), work, o.thawCommand(), null);
    Path repo = ColdStartDemo.ensureModel(work, demo, log);
    MlpSpec spec = MlpGenerator.readSpec(repo.resolve(ColdStartDemo.MODEL));
    float[] input = spec.sampleInput(1);
    float[] expected = spec.reference(input, 1);
    long modelBytes = ColdStartDemo.treeBytes(repo);
    List<String> thaw = MountBench.thawCommand(o.thawCommand());
    InferenceClient client = new InferenceClient();
    client.warmUp(FreePorts.pick(1)[0]);
    boolean dropped = Machine.dropPageCache(log);
    Map<String, Object> summary = new LinkedHashMap<>();
    Map<String, Object> small;
    StringBuilder table = new StringBuilder();
    try (S3ProxyServer s3 = S3ProxyServer.start(work.resolve("s3"));
        ThrottlingProxy proxy = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", s3.port()), Throttle.RATE_BYTES,
            Throttle.BURST_BYTES)) {
      List<String> server = ColdStartDemo.serverCommand(demo);
      summary.putAll(variant("as is", work.resolve("as-is"), repo, server, thaw, o, s3, proxy, client, input, expected,
          log, table));
      List<String> mapped = new ArrayList<>(server);
      mapped.add("--ort-session-config=session.disable_prepacking=1");
      small = variant("weights mapped", work.resolve("mapped"), repo, mapped, thaw, o, s3, proxy, client, input,
          expected, log, table);
      // the deployment shape, compared in the same run with the rows above
      summary.put("on_mount", onMount("as is", work.resolve("as-is-mount"), repo, server, thaw, o, s3, proxy, client,
          input, expected, log, table));
      small.put("on_mount", onMount("weights mapped", work.resolve("mapped-mount"), repo, mapped, thaw, o, s3, proxy,
          client, input, expected, log, table));
    }
    summary.put("weights_mapped", small);
    summary.put("model_bytes", modelBytes);
    summary.put("runs", o.runs());
    summary.put("origin", String.format(Locale.ROOT, "S3Proxy 3.0.0 behind a per-connection throttle of %.0f MB/s",
        Throttle.RATE_BYTES / 1e6));
    summary.put("page_cache_dropped", dropped);
    summary.put("machine", Machine.description());
    return new Result(summary, table.toString());
  }

  private static Map<String, Object> variant(String label, Path work, Path repo, List<String> server, List<String> thaw,
      Options o, S3ProxyServer s3, ThrottlingProxy proxy, InferenceClient client, float[] input, float[] expected,
      PrintStream log, StringBuilder table) throws Exception {
    String prefix = PREFIX + work.getFileName() + "-" + System.currentTimeMillis() + "/";
    String direct = s3.originUri(prefix);
    String throttled = s3.originUri(prefix, proxy.port());
    log.printf("checkpoint bench: ort-server %s%n", label);
    try (SnapshotRuns runs = new SnapshotRuns(work, repo, server, thaw, CREDENTIALS, log, client, input, expected,
        proxy::bytesToClients, null)) {
      List<Double> boots = new ArrayList<>();
      List<Double> bootCpu = new ArrayList<>();
      for (int i = 0; i < o.runs(); i++) {
        SnapshotRuns.Timed t = runs.boot();
        boots.add(t.firstInferenceS());
        bootCpu.add(t.cpuTotal());
        log.printf(Locale.ROOT, "  cold boot: %.2f s, %.1f CPU s%n", boots.getLast(), bootCpu.getLast());
      }
      runs.checkpoint(direct);
      List<Double> local = new ArrayList<>();
      List<Long> mappedBytes = new ArrayList<>();
      List<Double> localCpu = new ArrayList<>();
      for (int i = 0; i < o.runs(); i++) {
        SnapshotRuns.Timed t = runs.restoreLocal(direct);
        local.add(t.firstInferenceS());
        localCpu.add(t.cpuTotal());
        mappedBytes.add(t.fileBackedBytes());
        log.printf(Locale.ROOT, "  restore, images on local disk: %.2f s (%s resident from mapped files)%n",
            local.getLast(), ColdStartDemo.human(t.fileBackedBytes()));
      }
      List<Double> remote = new ArrayList<>();
      long fetched = 0;
      List<Double> remoteCpu = new ArrayList<>();
      for (int i = 0; i < o.runs(); i++) {
        proxy.resetCounters();
        SnapshotRuns.Timed t = runs.restoreFromOrigin(throttled);
        remote.add(t.firstInferenceS());
        remoteCpu.add(t.cpuTotal());
        fetched = t.bytesFetched();
        log.printf(Locale.ROOT, "  restore, images from the origin (new node): %.2f s, %s from the origin%n",
            remote.getLast(), ColdStartDemo.human(fetched));
      }
      long mustRead = runs.imageBytes() + medianBytes(mappedBytes);
      double floor = runs.localReadFloorS(mustRead);
      long pushedBytes = runs.pushedBytes(direct);
      double rate = runs.bestDownloadRate(throttled, key -> s3.httpUrl(prefix, key, proxy.port()));
      double originFloor = pushedBytes / rate;
      Map<String, Object> r = new LinkedHashMap<>();
      double boot = median(boots);
      double restoreLocal = median(local);
      double restoreOrigin = median(remote);
      r.put("boot_s", round(boot));
      r.put("restore_local_s", round(restoreLocal));
      r.put("restore_origin_s", round(restoreOrigin));
      r.put("dump_s", round(runs.dumpS()));
      r.put("image_bytes", runs.imageBytes());
      r.put("floor_s", round(floor));
      r.put("origin_floor_s", round(originFloor));
      r.put("floor_bytes", mustRead);
      r.put("mapped_file_bytes", medianBytes(mappedBytes));
      r.put("pushed_bytes", pushedBytes);
      r.put("origin_bytes_per_restore", fetched);
      r.put("best_download_gbps", round(rate / 1e9));
      r.put("boot_over_restore_local", round(boot / restoreLocal));
      r.put("restore_local_over_floor", round(restoreLocal / floor));
      r.put("restore_origin_over_origin_floor", round(restoreOrigin / originFloor));
      Map<String, Object> goals = new LinkedHashMap<>();
      goals.put("restore_local_s <= 1.5 x floor_s", restoreLocal <= 1.5 * floor);
      goals.put("restore_origin_s <= 1.3 x origin_floor_s", restoreOrigin <= 1.3 * originFloor);
      goals.put("boot_s / restore_local_s >= 3", boot / restoreLocal >= 3);
      r.put("goals", goals);
      r.put("runs_s", paths(boots, local, remote));
      Map<String, Object> cpu = new LinkedHashMap<>();
      cpu.put("boot", round(median(bootCpu)));
      cpu.put("restore_local", round(median(localCpu)));
      cpu.put("restore_origin", round(median(remoteCpu)));
      r.put("cpu_s_at_first_inference", cpu);
      table.append(String.format(Locale.ROOT, "%n%s: image %s, dump %.2f s%n", "ort-server " + label,
          ColdStartDemo.human(runs.imageBytes()), runs.dumpS()));
      table.append(String.format(Locale.ROOT, "  %-44s %7.2f s  (%s CPU s)%n", "cold boot, model on local disk", boot,
          cpu.get("boot")));
      table.append(String.format(Locale.ROOT, "  %-44s %7.2f s  (%s CPU s; floor %.2f s: %s from local disk; x%.2f)%n",
          "restore, images on local disk", restoreLocal, cpu.get("restore_local"), floor, ColdStartDemo.human(mustRead),
          restoreLocal / floor));
      table.append(String.format(Locale.ROOT, "  %-44s %7.2f s  (%s CPU s; floor %.2f s: %s at %.2f GB/s; x%.2f)%n",
          "restore on a new node, images from the origin", restoreOrigin, cpu.get("restore_origin"), originFloor,
          ColdStartDemo.human(pushedBytes), rate / 1e9, restoreOrigin / originFloor));
      table.append(String.format(Locale.ROOT, "  boot / restore (local): %.1fx%n", boot / restoreLocal));
      return r;
    }
  }

  /**
   * The same server with its model on a Thaw mount: the model pushed to the origin the snapshot goes to, the snapshot
   * taken of the server booted on a mount of it, then each path with a fresh mount (see {@link SnapshotRuns}).
   */
  private static Map<String, Object> onMount(String label, Path work, Path repo, List<String> server, List<String> thaw,
      Options o, S3ProxyServer s3, ThrottlingProxy proxy, InferenceClient client, float[] input, float[] expected,
      PrintStream log, StringBuilder table) throws Exception {
    String prefix = PREFIX + work.getFileName() + "-" + System.currentTimeMillis() + "/";
    String direct = s3.originUri(prefix);
    String throttled = s3.originUri(prefix, proxy.port());
    log.printf("checkpoint bench: ort-server %s, its model on a Thaw mount%n", label);
    try (Origin origin = Origins.open(direct)) {
      long t0 = System.nanoTime();
      Pusher.Result p = new Pusher(origin, Pusher.DEFAULT_CHUNK_SIZE, 8, PushProgress.NONE).push(repo, MODEL_NAME);
      log.printf(Locale.ROOT, "  pushed %s as %s in %.1f s%n", MODEL_NAME, p.digest(), (System.nanoTime() - t0) / 1e9);
    }
    SnapshotRuns.OnMount mount = new SnapshotRuns.OnMount(MODEL_NAME.toString(), throttled, work.resolve("mnt"));
    try (SnapshotRuns runs = new SnapshotRuns(work, repo, server, thaw, CREDENTIALS, log, client, input, expected,
        proxy::bytesToClients, mount)) {
      runs.checkpoint(direct);
      List<SnapshotRuns.Timed> boots = new ArrayList<>();
      List<SnapshotRuns.Timed> local = new ArrayList<>();
      List<SnapshotRuns.Timed> remote = new ArrayList<>();
      List<SnapshotRuns.Timed> noPrefetch = new ArrayList<>();
      for (int i = 0; i < o.runs(); i++) {
        boots.add(runs.boot());
        log.printf(Locale.ROOT, "  cold boot on a fresh mount: %s%n", line(boots.getLast()));
      }
      for (int i = 0; i < o.runs(); i++) {
        local.add(runs.restoreLocal(direct));
        log.printf(Locale.ROOT, "  restore, images on local disk, a fresh mount first: %s%n", line(local.getLast()));
      }
      for (int i = 0; i < o.runs(); i++) {
        remote.add(runs.restoreFromOrigin(throttled));
        log.printf(Locale.ROOT, "  restore on a new node, the restore mounting the model: %s%n", line(remote.getLast()));
      }
      for (int i = 0; i < o.runs(); i++) {
        noPrefetch.add(runs.restoreLocalWithoutPrefetch(direct));
        log.printf(Locale.ROOT, "  restore, images on local disk, a fresh mount first, --prefetch off: %s%n",
            line(noPrefetch.getLast()));
      }
      Map<String, Object> r = new LinkedHashMap<>();
      double boot = median(seconds(boots));
      double restoreLocal = median(seconds(local));
      double restoreOrigin = median(seconds(remote));
      double restoreNoPrefetch = median(seconds(noPrefetch));
      r.put("boot_s", round(boot));
      r.put("restore_local_s", round(restoreLocal));
      r.put("restore_origin_s", round(restoreOrigin));
      r.put("restore_local_no_prefetch_s", round(restoreNoPrefetch));
      r.put("dump_s", round(runs.dumpS()));
      r.put("image_bytes", runs.imageBytes());
      r.put("boot_over_restore_local", round(boot / restoreLocal));
      r.put("boot_over_restore_origin", round(boot / restoreOrigin));
      Map<String, Object> fetched = new LinkedHashMap<>();
      fetched.put("boot", medianBytes(boots.stream().map(SnapshotRuns.Timed::bytesFetched).toList()));
      fetched.put("restore_local", medianBytes(local.stream().map(SnapshotRuns.Timed::bytesFetched).toList()));
      fetched.put("restore_origin", medianBytes(remote.stream().map(SnapshotRuns.Timed::bytesFetched).toList()));
      fetched.put("restore_local_no_prefetch", medianBytes(noPrefetch.stream().map(SnapshotRuns.Timed::bytesFetched)
          .toList()));
      r.put("origin_bytes_at_first_inference", fetched);
      Map<String, Object> cpu = new LinkedHashMap<>();
      cpu.put("boot", round(median(cpuTotals(boots))));
      cpu.put("restore_local", round(median(cpuTotals(local))));
      cpu.put("restore_origin", round(median(cpuTotals(remote))));
      cpu.put("restore_local_no_prefetch", round(median(cpuTotals(noPrefetch))));
      r.put("cpu_s_at_first_inference", cpu);
      r.put("mapped_file_bytes", medianBytes(local.stream().map(SnapshotRuns.Timed::fileBackedBytes).toList()));
      r.put("how", paths(boots.getFirst().how(), local.getFirst().how(), remote.getFirst().how(),
          noPrefetch.getFirst().how()));
      r.put("runs_s", paths(seconds(boots), seconds(local), seconds(remote), seconds(noPrefetch)));
      r.put("runs_cpu_s", paths(runCpu(boots), runCpu(local), runCpu(remote), runCpu(noPrefetch)));
      table.append(String.format(Locale.ROOT, "%n%s, its model on a Thaw mount (fresh mount and cache each run):"
          + " image %s, dump %.2f s%n", "ort-server " + label, ColdStartDemo.human(runs.imageBytes()), runs.dumpS()));
      table.append(row("cold boot on the mount", boot, fetched.get("boot"), cpu.get("boot")));
      table.append(row("restore, images on local disk (mount first)", restoreLocal, fetched.get("restore_local"),
          cpu.get("restore_local")));
      table.append(String.format(Locale.ROOT, "    (the restored server had %s resident from mapped files)%n",
          ColdStartDemo.human((Long) r.get("mapped_file_bytes"))));
      table.append(row("restore on a new node (the restore mounts)", restoreOrigin, fetched.get("restore_origin"),
          cpu.get("restore_origin")));
      table.append(row("restore, local images, mount --prefetch off", restoreNoPrefetch,
          fetched.get("restore_local_no_prefetch"), cpu.get("restore_local_no_prefetch")));
      table.append(String.format(Locale.ROOT, "  boot / restore on the mount (local images): %.1fx%n",
          boot / restoreLocal));
      return r;
    }
  }

  private static Map<String, Object> paths(Object boot, Object restoreLocal, Object restoreOrigin) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("boot", boot);
    m.put("restore_local", restoreLocal);
    m.put("restore_origin", restoreOrigin);
    return m;
  }

  private static Map<String, Object> paths(Object boot, Object restoreLocal, Object restoreOrigin,
      Object restoreLocalNoPrefetch) {
    Map<String, Object> m = paths(boot, restoreLocal, restoreOrigin);
    m.put("restore_local_no_prefetch", restoreLocalNoPrefetch);
    return m;
  }

  private static String row(String what, double s, Object fetched, Object cpu) {
    return String.format(Locale.ROOT, "  %-44s %7.2f s  (%s from the origin, %s CPU s)%n", what, s,
        ColdStartDemo.human((Long) fetched), cpu);
  }

  private static String line(SnapshotRuns.Timed t) {
    return String.format(Locale.ROOT, "%.2f s, %s from the origin, %.1f CPU s", t.firstInferenceS(),
        ColdStartDemo.human(t.bytesFetched()), t.cpuTotal());
  }

  private static List<Double> seconds(List<SnapshotRuns.Timed> runs) {
    return runs.stream().map(SnapshotRuns.Timed::firstInferenceS).toList();
  }

  private static List<Double> cpuTotals(List<SnapshotRuns.Timed> runs) {
    return runs.stream().map(SnapshotRuns.Timed::cpuTotal).toList();
  }

  private static List<Map<String, Double>> runCpu(List<SnapshotRuns.Timed> runs) {
    List<Map<String, Double>> out = new ArrayList<>();
    for (SnapshotRuns.Timed t : runs) {
      Map<String, Double> m = new LinkedHashMap<>();
      t.cpuSeconds().forEach((k, v) -> m.put(k, round(v)));
      out.add(m);
    }
    return out;
  }

  static double median(List<Double> v) {
    List<Double> s = new ArrayList<>(v);
    s.sort(null);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

  private static long medianBytes(List<Long> v) {
    List<Long> s = new ArrayList<>(v);
    s.sort(null);
    return s.get(s.size() / 2);
  }

  private static double round(double v) {
    return ColdStartDemo.round(v);
  }
}
