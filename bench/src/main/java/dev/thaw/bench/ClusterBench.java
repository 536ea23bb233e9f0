package dev.thaw.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.sidecar.ApiToken;
import dev.thaw.sidecar.Sidecar;
import dev.thaw.sidecar.cluster.ClusterMember;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.testkit.EtcdCluster;
import dev.thaw.testkit.NginxServer;
import dev.thaw.testkit.ThrottlingProxy;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * {@code thaw bench cluster}: N sidecars cold-start the same model at once from an emulated origin (nginx behind a
 * per-connection throttle, the bytes counted where they leave it), once as standalone sidecars and once as a cluster
 * sharing chunks (peers and cooperative fetch), for each N. Each run: fresh caches, every sidecar mounts the model,
 * then every "server" reads all of it at once; measured are the bytes the origin sent and the seconds until every
 * sidecar has read the whole model. The sidecars run in this JVM, each with its own cache, FUSE mount and endpoints.
 */
public final class ClusterBench {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What to run: the model size, the cluster sizes, the origin's rate per connection, where to work. */
  public record Options(long modelBytes, List<Integer> nodes, double originBytesPerSecond, Path workDir) {}

  /** One run's figures. */
  public record Run(int nodes, boolean peers, long originBytes, double seconds) {}

  private ClusterBench() {}

  public static Map<String, Object> run(Options o, PrintStream log) throws Exception {
    Files.createDirectories(o.workDir());
    Path originDir = o.workDir().resolve("origin");
    ModelName name = ModelName.parse("bench-cluster:" + o.modelBytes());
    prepareModel(o, originDir, name, log);
    List<Run> runs = new ArrayList<>();
    try (EtcdCluster etcd = EtcdCluster.start(o.workDir().resolve("etcd-" + System.nanoTime()), 1);
        NginxServer nginx = NginxServer.start(originDir, o.workDir().resolve("nginx"), log);
        ThrottlingProxy proxy = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", nginx.port()),
            o.originBytesPerSecond(), 64 << 20)) {
      String origin = "http://127.0.0.1:" + proxy.port() + "/";
      for (int n : o.nodes()) {
        for (boolean peers : List.of(false, true)) {
          Run r = once(o, n, peers, origin, name, etcd, proxy, log);
          runs.add(r);
          log.printf(Locale.ROOT, "bench cluster: %d sidecar(s) %s: %.2f s, origin sent %.2f x the model%n", n,
              peers ? "with peers" : "without peers", r.seconds(), r.originBytes() / (double) o.modelBytes());
        }
      }
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("model_bytes", o.modelBytes());
    for (int n : o.nodes()) {
      Map<String, Object> m = new LinkedHashMap<>();
      for (Run r : runs) {
        if (r.nodes() == n) {
          String k = r.peers() ? "with_peers" : "without_peers";
          m.put("origin_bytes_" + k, r.originBytes());
          m.put("seconds_" + k, r.seconds());
        }
      }
      out.put("n" + n, m);
    }
    return out;
  }

  /** A table of the runs for people. */
  public static String table(Map<String, Object> result) {
    long model = ((Number) result.get("model_bytes")).longValue();
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "%-6s %22s %22s %16s %16s%n", "nodes",
        "origin x model, peers", "origin x model, none", "s, peers", "s, none"));
    result.forEach((k, v) -> {
      if (v instanceof Map<?, ?> m) {
        b.append(String.format(Locale.ROOT, "%-6s %22.2f %22.2f %16.2f %16.2f%n", k,
            ((Number) m.get("origin_bytes_with_peers")).doubleValue() / model,
            ((Number) m.get("origin_bytes_without_peers")).doubleValue() / model,
            ((Number) m.get("seconds_with_peers")).doubleValue(), ((Number) m.get("seconds_without_peers")).doubleValue()));
      }
    });
    return b.toString();
  }

  private static void prepareModel(Options o, Path originDir, ModelName name, PrintStream log) throws IOException {
    try (var origin = Origins.open(originDir.toUri().toString())) {
      try {
        new ModelStore(origin).resolve(name);
        return; // pushed by an earlier run
      } catch (IOException notYet) {
        // push it below
      }
      Path model = o.workDir().resolve("model");
      Files.createDirectories(model);
      Path weights = model.resolve("weights.bin");
      log.printf(Locale.ROOT, "bench cluster: writing a %d MiB model%n", o.modelBytes() >> 20);
      SplittableRandom r = new SplittableRandom(42);
      try (OutputStream out = Files.newOutputStream(weights)) {
        byte[] block = new byte[1 << 20];
        for (long left = o.modelBytes(); left > 0; left -= block.length) {
          for (int i = 0; i < block.length; i += 8) {
            long v = r.nextLong();
            for (int k = 0; k < 8; k++) {
              block[i + k] = (byte) (v >>> (8 * k));
            }
          }
          out.write(block, 0, (int) Math.min(block.length, left));
        }
      }
      new Pusher(origin, Pusher.DEFAULT_CHUNK_SIZE, 8, PushProgress.NONE).push(model, name);
      Files.delete(weights);
    }
  }

  private static Run once(Options o, int n, boolean peers, String origin, ModelName name, EtcdCluster etcd,
      ThrottlingProxy proxy, PrintStream log) throws Exception {
    Path runDir = o.workDir().resolve("run-" + n + (peers ? "-peers" : "-alone"));
    deleteTree(runDir);
    List<ApplicationContext> sidecars = new ArrayList<>();
    HttpClient http = HttpClient.newHttpClient();
    String token = "bench-cluster-token-" + Long.toHexString(System.nanoTime());
    String prefix = "/bench-" + System.nanoTime(); // a cluster of its own in etcd
    try {
      for (int i = 0; i < n; i++) {
        Map<String, Object> p = new HashMap<>();
        p.put("thaw.api.port", -1);
        p.put("thaw.origin", origin);
        p.put("thaw.mount-root", runDir.resolve("node-" + i + "/mounts").toString());
        p.put("thaw.cache-dir", runDir.resolve("node-" + i + "/cache").toString());
        p.put("thaw.cache-max-bytes", o.modelBytes() * 2);
        if (peers) {
          p.put("thaw.cluster.etcd", etcd.endpoints());
          p.put("thaw.cluster.prefix", prefix);
          p.put("thaw.cluster.node-id", "node-" + i);
          p.put("thaw.cluster.token", token);
          p.put("thaw.cluster.peer-host", "127.0.0.1");
          p.put("thaw.cluster.peer-port", 0);
          p.put("thaw.cluster.lease-ttl", "5s");
        }
        sidecars.add(Sidecar.start(p));
      }
      List<Path> files = new ArrayList<>();
      String digest = null;
      for (ApplicationContext c : sidecars) {
        URI base = c.getBean(EmbeddedServer.class).getURI();
        HttpResponse<String> made = http.send(HttpRequest.newBuilder(base.resolve("/v1/mounts"))
            .header("Authorization", "Bearer " + c.getBean(ApiToken.class).value())
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"" + name + "\", \"prefetch\": \"off\"}")).build(),
            HttpResponse.BodyHandlers.ofString());
        if (made.statusCode() != 201) {
          throw new IOException("mount failed: " + made.body());
        }
        JsonNode mount = JSON.readTree(made.body());
        files.add(Path.of(mount.get("mountpoint").asText(), "weights.bin"));
        digest = mount.get("digest").asText();
      }
      if (peers) {
        awaitAllFetching(sidecars, n, digest);
      }
      proxy.resetCounters();
      long self = ProcessHandle.current().pid();
      Map<String, double[]> threads0 = MountProcess.threadCpuSeconds(self);
      long t0 = System.nanoTime();
      ExecutorService pool = Executors.newFixedThreadPool(n);
      try {
        List<Future<Long>> reads = new ArrayList<>();
        for (Path f : files) {
          reads.add(pool.submit(() -> readAll(f)));
        }
        for (Future<Long> r : reads) {
          long got = r.get(30, TimeUnit.MINUTES);
          if (got != o.modelBytes()) {
            throw new IOException("read " + got + " bytes of a " + o.modelBytes() + "-byte model");
          }
        }
      } finally {
        pool.shutdownNow();
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      logBusiestThreads(log, threads0, MountProcess.threadCpuSeconds(self));
      return new Run(n, peers, proxy.bytesToClients(), seconds);
    } finally {
      for (ApplicationContext c : sidecars) {
        c.close();
      }
      deleteTree(runDir);
    }
  }

  /** The CPU the sidecars (all in this JVM) spent during the reads, by thread name, busiest first. */
  private static void logBusiestThreads(PrintStream log, Map<String, double[]> before, Map<String, double[]> after) {
    StringBuilder line = new StringBuilder("  cpu s by thread (user+sys):");
    Map<String, Double> spent = new java.util.HashMap<>();
    after.forEach((name, t) -> {
      double[] t0 = before.getOrDefault(name, new double[2]);
      spent.put(name, t[0] + t[1] - t0[0] - t0[1]);
    });
    spent.entrySet().stream()
        .filter(e -> e.getValue() >= 0.01)
        .sorted(Map.Entry.<String, Double>comparingByValue().reversed())
        .forEach(e -> line.append(String.format(Locale.ROOT, " %s=%.2f", e.getKey(), e.getValue())));
    log.println(line);
  }

  /** Until each member has heard that all N fetch the model: what the chunks' owners are picked among. */
  private static void awaitAllFetching(List<ApplicationContext> sidecars, int n, String digest) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      if (sidecars.stream().allMatch(c -> c.getBean(ClusterMember.class).fetchers(digest) == n)) {
        return;
      }
      Thread.sleep(50);
    }
    throw new IOException("the " + n + " members did not hear of each other fetching " + digest + " within 30 s");
  }

  private static long readAll(Path f) throws IOException {
    long total = 0;
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
      int r;
      while ((r = ch.read(buf.clear())) > 0) {
        total += r;
      }
    }
    return total;
  }

  private static void deleteTree(Path dir) throws IOException {
    ModelGenerator.deleteTree(dir);
  }
}
