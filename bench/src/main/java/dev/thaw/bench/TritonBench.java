package dev.thaw.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.FreePorts;
import dev.thaw.triton.TritonCalls;
import dev.thaw.triton.TritonGrpcProxy;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * {@code thaw bench triton}: what Thaw's gRPC proxy adds in front of a Triton-protocol server (the example server,
 * a separate process, on loopback): the latency of a small ModelInfer direct and through the proxy, one client and
 * 16 at once, measured in alternating rounds in the same run, the throughput at 16 clients as a ratio, and the
 * bandwidth of a ModelInfer with 16 MiB in and 16 MiB out; then a model served from zero ({@link TritonScaleFromZero}).
 */
public final class TritonBench {
  private static final int LARGE_REQUESTS = 20;

  private TritonBench() {}

  /**
   * What to run: requests per round, rounds, the size of the model served from zero, and where the models and logs
   * go.
   */
  public record Options(int requests, int rounds, long scaleModelBytes, Path workDir) {}

  /** The figures, as the JSON keys say. */
  public record Result(double p50DirectMs1, double p50ProxyMs1, double p99DirectMs1, double p99ProxyMs1,
      double p50DirectMs16, double p50ProxyMs16, double throughputDirect16, double throughputProxy16,
      int requestBytes, double largeDirectGbps, double largeProxyGbps, long largeBytesPerRequest,
      TritonScaleFromZero.Result scale) {
    Result withScale(TritonScaleFromZero.Result s) {
      return new Result(p50DirectMs1, p50ProxyMs1, p99DirectMs1, p99ProxyMs1, p50DirectMs16, p50ProxyMs16,
          throughputDirect16, throughputProxy16, requestBytes, largeDirectGbps, largeProxyGbps, largeBytesPerRequest, s);
    }

    public String toJson() {
      ObjectNode o = new ObjectMapper().createObjectNode();
      o.put("p50_added_ms_1", round(p50ProxyMs1 - p50DirectMs1));
      o.put("p99_added_ms_1", round(p99ProxyMs1 - p99DirectMs1));
      o.put("p50_added_ms_16", round(p50ProxyMs16 - p50DirectMs16));
      o.put("throughput_ratio_16", round(throughputProxy16 / throughputDirect16));
      o.put("p50_direct_ms_1", round(p50DirectMs1));
      o.put("p50_proxy_ms_1", round(p50ProxyMs1));
      o.put("p99_direct_ms_1", round(p99DirectMs1));
      o.put("p99_proxy_ms_1", round(p99ProxyMs1));
      o.put("p50_direct_ms_16", round(p50DirectMs16));
      o.put("p50_proxy_ms_16", round(p50ProxyMs16));
      o.put("throughput_direct_16_per_s", round(throughputDirect16));
      o.put("throughput_proxy_16_per_s", round(throughputProxy16));
      o.put("request_bytes", requestBytes);
      o.put("large_bandwidth_ratio", round(largeProxyGbps / largeDirectGbps));
      o.put("large_direct_gbps", round(largeDirectGbps));
      o.put("large_proxy_gbps", round(largeProxyGbps));
      o.put("large_bytes_per_request", largeBytesPerRequest);
      o.put("scale_from_zero_s", round(scale.lazy().seconds()));
      o.put("scale_from_zero_profile_s", round(scale.lazyProfile().seconds()));
      o.put("download_then_load_s", round(scale.downloadThenLoad().seconds()));
      o.put("proxy_share", round(scale.lazyProfile().thawShareS() / scale.lazyProfile().seconds()));
      o.put("proxy_share_no_profile", round(scale.lazy().thawShareS() / scale.lazy().seconds()));
      o.put("scale_from_zero_profile_vs_download_then_load", round(scale.lazyProfile().seconds()
          / scale.downloadThenLoad().seconds()));
      o.put("scale_from_zero_vs_download_then_load", round(scale.lazy().seconds() / scale.downloadThenLoad().seconds()));
      o.put("download_s", round(scale.downloadS()));
      double gb = scale.modelBytes() / 1e9;
      ObjectNode cpu = o.putObject("scale_cpu_s_per_gb");
      cpu.put("download_then_load", round(scale.downloadThenLoad().cpuS() / gb));
      cpu.put("scale_from_zero", round(scale.lazy().cpuS() / gb));
      cpu.put("scale_from_zero_profile", round(scale.lazyProfile().cpuS() / gb));
      o.put("scale_model_bytes", scale.modelBytes());
      o.set("machine", new ObjectMapper().valueToTree(Machine.description()));
      return o.toString();
    }
  }

  public static Result run(Options o, PrintStream log) throws Exception {
    Result r = throughTheProxy(o, log);
    return r.withScale(TritonScaleFromZero.run(o.scaleModelBytes(), o.workDir(), log));
  }

  /** The added latency, throughput and bandwidth of the proxy in front of a running server. */
  private static Result throughTheProxy(Options o, PrintStream log) throws Exception {
    Path repo = o.workDir().resolve("repository");
    MlpSpec spec = MlpSpec.forSize(1L << 20, 7);
    if (!Files.isDirectory(repo.resolve("mlp"))) {
      MlpGenerator.generate(repo, "mlp", spec);
    }
    // large tensors: 8 rows of 2^19 floats in and out, 16 MiB each way, through a narrow hidden layer
    MlpSpec wide = new MlpSpec(8, 1 << 19, 8, 1, 1 << 19, 256L << 20);
    if (!Files.isDirectory(repo.resolve("wide"))) {
      MlpGenerator.generate(repo, "wide", wide);
    }
    int[] ports = FreePorts.pick(2);
    List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC", "-cp", System.getProperty("java.class.path"),
        "dev.thaw.examples.ortserver.OrtServer", "--model-repository=" + repo, "--http-port=" + ports[0],
        "--grpc-port=" + ports[1], "--allow-metrics=false", "--warmup");
    try (ServerProcess server = ServerProcess.start(cmd, o.workDir().resolve("ort-server.log"));
         TritonGrpcProxy proxy = TritonGrpcProxy.start(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + ports[1])) {
      ManagedChannel direct = channel(ports[1]);
      ManagedChannel viaProxy = channel(proxy.port());
      try {
        awaitReady(direct);
        ModelInferRequest request = request(spec, "mlp", 1);
        log.printf(Locale.ROOT, "bench triton: ModelInfer of %d bytes, %d requests x %d rounds, direct and through "
            + "the proxy in turn%n", request.getSerializedSize(), o.requests(), o.rounds());
        for (ManagedChannel c : List.of(direct, viaProxy)) { // JIT warm-up of both paths
          latencies(c, request, 2_000, 1);
        }
        List<Double> d1 = new ArrayList<>();
        List<Double> p1 = new ArrayList<>();
        List<Double> d16 = new ArrayList<>();
        List<Double> p16 = new ArrayList<>();
        double dThroughput = 0;
        double pThroughput = 0;
        for (int round = 0; round < o.rounds(); round++) {
          d1.addAll(latencies(direct, request, o.requests(), 1).millis());
          p1.addAll(latencies(viaProxy, request, o.requests(), 1).millis());
          Run d = latencies(direct, request, o.requests(), 16);
          Run p = latencies(viaProxy, request, o.requests(), 16);
          d16.addAll(d.millis());
          p16.addAll(p.millis());
          dThroughput += d.perSecond() / o.rounds();
          pThroughput += p.perSecond() / o.rounds();
        }
        ModelInferRequest large = request(wide, "wide", MlpGenerator.MAX_BATCH_SIZE);
        long largeBytes = large.getSerializedSize() + 4L * MlpGenerator.MAX_BATCH_SIZE * wide.outputDim();
        latencies(direct, large, 4, 1); // warm-up of both paths
        latencies(viaProxy, large, 4, 1);
        double dLarge = 0;
        double pLarge = 0;
        for (int round = 0; round < o.rounds(); round++) {
          dLarge += latencies(direct, large, LARGE_REQUESTS, 1).perSecond() * largeBytes / 1e9 / o.rounds();
          pLarge += latencies(viaProxy, large, LARGE_REQUESTS, 1).perSecond() * largeBytes / 1e9 / o.rounds();
        }
        Result r = new Result(percentile(d1, 50), percentile(p1, 50), percentile(d1, 99), percentile(p1, 99),
            percentile(d16, 50), percentile(p16, 50), dThroughput, pThroughput, request.getSerializedSize(),
            dLarge, pLarge, largeBytes, null);
        log.printf(Locale.ROOT, "bench triton: 1 client p50 %.3f -> %.3f ms, p99 %.3f -> %.3f ms; 16 clients p50 "
            + "%.3f -> %.3f ms, %.0f -> %.0f requests/s (%.2f x); 16 MiB in and out: %.3f -> %.3f GB/s (%.2f x)%n",
            r.p50DirectMs1(), r.p50ProxyMs1(), r.p99DirectMs1(), r.p99ProxyMs1(), r.p50DirectMs16(),
            r.p50ProxyMs16(), r.throughputDirect16(), r.throughputProxy16(),
            r.throughputProxy16() / r.throughputDirect16(), dLarge, pLarge, pLarge / dLarge);
        return r;
      } finally {
        direct.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        viaProxy.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  record Run(List<Double> millis, double perSecond) {}

  /** {@code n} requests from {@code clients} blocking clients at once: each one's latency, and requests per second. */
  static Run latencies(ManagedChannel channel, ModelInferRequest request, int n, int clients)
      throws Exception {
    List<Double> millis = java.util.Collections.synchronizedList(new ArrayList<>(n));
    long start = System.nanoTime();
    try (ExecutorService pool = Executors.newFixedThreadPool(clients)) {
      List<Future<?>> done = new ArrayList<>();
      for (int c = 0; c < clients; c++) {
        int share = n / clients;
        done.add(pool.submit(() -> {
          for (int i = 0; i < share; i++) {
            long t0 = System.nanoTime();
            TritonCalls.call(channel, GRPCInferenceServiceGrpc.getModelInferMethod(), request, Duration.ofSeconds(30));
            millis.add((System.nanoTime() - t0) / 1e6);
          }
          return null;
        }));
      }
      for (Future<?> f : done) {
        f.get();
      }
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    return new Run(millis, millis.size() / seconds);
  }

  private static double percentile(List<Double> values, int p) {
    double[] sorted = values.stream().mapToDouble(Double::doubleValue).toArray();
    Arrays.sort(sorted);
    return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)];
  }

  static ModelInferRequest request(MlpSpec spec, String model, int batch) {
    ByteBuffer input = ByteBuffer.allocate(4 * batch * spec.inputDim()).order(ByteOrder.LITTLE_ENDIAN);
    input.asFloatBuffer().put(spec.sampleInput(batch));
    return ModelInferRequest.newBuilder().setModelName(model)
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName(MlpGenerator.INPUT).setDatatype("FP32")
            .addShape(batch).addShape(spec.inputDim()))
        .addRawInputContents(ByteString.copyFrom(input.array()))
        .build();
  }

  static ManagedChannel channel(int port) {
    return Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
        .maxInboundMessageSize(64 << 20).build();
  }

  static void awaitReady(ManagedChannel channel) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (System.nanoTime() < deadline) {
      try {
        if (TritonCalls.call(channel, GRPCInferenceServiceGrpc.getServerReadyMethod(),
            ServerReadyRequest.getDefaultInstance(), Duration.ofSeconds(5)).getReady()) {
          return;
        }
      } catch (RuntimeException notYet) {
        // still starting
      }
      Thread.sleep(100);
    }
    throw new IOException("the example server was not ready within 120 s");
  }

  private static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }
}
