package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import io.grpc.ManagedChannel;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The first inference the proxies see answered, which tells the wrapper that Triton is warm (and, over HTTP, gives it
 * the request to probe a snapshot with): only a successful inference counts; over HTTP its path and JSON body come
 * with it, over gRPC only its model.
 */
class FirstInferenceTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static final HttpClient HTTP = HttpClient.newHttpClient();

  @BeforeAll
  static void start() throws Exception {
    spec = MlpSpec.forSize(256L << 10, 61);
    MlpGenerator.generate(repository, "mlp", spec);
    server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
        "--http-port=0", "--allow-metrics=false", "--model-control-mode=explicit",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).isTrue();
  }

  @AfterAll
  static void stop() {
    server.close();
  }

  @Test
  void overHttpTheFirstInferenceAnsweredComesWithItsPathAndJsonBodyAndAFailedOneDoesNotCount() throws Exception {
    try (ModelLoads loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(), ModelLoads.DEFAULT_LIMITS);
        TritonHttpProxy proxy = TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", server.httpPort()), loads)) {
      CompletableFuture<ModelLoads.Inference> first = loads.firstInferenceAnswered();

      HttpResponse<String> refused = post(proxy.port(), "/v2/models/mlp/infer", "{\"inputs\":[]}");
      assertThat(refused.statusCode()).isEqualTo(400);
      String body = jsonInferRequest(2);
      HttpResponse<String> answered = post(proxy.port(), "/v2/models/mlp/infer", body);
      assertThat(answered.statusCode()).as(answered.body()).isEqualTo(200);

      ModelLoads.Inference inference = first.get(10, TimeUnit.SECONDS);
      assertThat(inference.model()).isEqualTo("mlp");
      assertThat(inference.recorded()).isTrue();
      assertThat(inference.path()).isEqualTo("/v2/models/mlp/infer");
      assertThat(new String(inference.body(), StandardCharsets.UTF_8)).isEqualTo(body);
    }
  }

  @Test
  void overGrpcTheFirstInferenceAnsweredNamesItsModelOnly() throws Exception {
    try (ModelLoads loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(), ModelLoads.DEFAULT_LIMITS);
        TritonGrpcProxy proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
            "127.0.0.1:" + server.grpcPort(), loads)) {
      CompletableFuture<ModelLoads.Inference> first = loads.firstInferenceAnswered();
      ManagedChannel channel = ProxyTesting.channel(proxy.port());
      try {
        GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
            .modelInfer(ProxyTesting.request(spec, "mlp", 1, "first"));
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }

      ModelLoads.Inference inference = first.get(10, TimeUnit.SECONDS);
      assertThat(inference.model()).isEqualTo("mlp");
      assertThat(inference.recorded()).as("its tensors are not kept").isFalse();
    }
  }

  private static HttpResponse<String> post(int port, String path, String body) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .POST(HttpRequest.BodyPublishers.ofString(body)).timeout(Duration.ofSeconds(60)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static String jsonInferRequest(int batch) {
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(batch)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    return "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[" + batch + "," + spec.inputDim()
        + "],\"data\":[" + data + "]}]}";
  }
}
