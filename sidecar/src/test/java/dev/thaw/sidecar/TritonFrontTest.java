package dev.thaw.sidecar;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.cli.TritonFixtures;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.fuse.MountTable;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.InferTensorContents;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelReadyRequest;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.micronaut.context.ApplicationContext;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sidecar in front of a Triton container ({@code thaw.triton}): it mounts the repository (an S3 bucket, read
 * where it is), Triton (the example server, started on the mount as its container would be) listens on other ports,
 * and the sidecar serves Triton's: a request for an unloaded model loads it, and that load is a cold start on
 * {@code /v1/coldstarts} and in {@code /metrics}.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TritonFrontTest {
  static final HttpClient HTTP = HttpClient.newHttpClient();
  static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  static Path tmp;
  static S3ProxyServer s3;
  static ApplicationContext sidecar;
  static OrtServer triton;
  static MlpSpec spec;
  static ManagedChannel channel;
  static Path repository;

  @BeforeAll
  static void start() throws Exception {
    s3 = S3ProxyServer.start(tmp.resolve("s3"));
    Path local = Files.createDirectories(tmp.resolve("repository"));
    spec = MlpSpec.forSize(256L << 10, 61);
    MlpGenerator.generate(local, "mlp", spec);
    MlpGenerator.generate(local, "brief", spec);
    TritonFixtures.upload(s3, local, "triton/models");
    int[] upstream = FreePorts.pick(2);
    Map<String, Object> settings = SidecarSettings.standalone(tmp, tmp.resolve("origin").toUri().toString());
    settings.put("thaw.triton.enabled", true);
    settings.put("thaw.triton.repositories", TritonFixtures.repositoryUrl(s3, "triton/models"));
    settings.put("thaw.triton.http-port", 0);
    settings.put("thaw.triton.grpc-port", 0);
    settings.put("thaw.triton.upstream-http", "127.0.0.1:" + upstream[0]);
    settings.put("thaw.triton.upstream-grpc", "127.0.0.1:" + upstream[1]);
    settings.put("thaw.triton.model-idle-unload", "brief=500ms");
    sidecar = Sidecar.start(settings);
    repository = tmp.resolve("mounts/triton/repository-0");
    assertThat(MountTable.find(repository)).as("the repository is mounted where Triton's container reads it")
        .isPresent();
    // Triton's container, started by its own spec on the shared mount, on the ports the sidecar forwards to
    triton = OrtServer.start(ServerOptions.parse("--model-repository=" + repository,
        "--http-address=127.0.0.1", "--http-port=" + upstream[0], "--grpc-address=127.0.0.1",
        "--grpc-port=" + upstream[1], "--allow-metrics=false", "--model-control-mode=explicit",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    channel = Grpc.newChannelBuilder("127.0.0.1:" + front().grpcPort().orElseThrow(),
        InsecureChannelCredentials.create()).build();
  }

  @AfterAll
  static void stop() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (sidecar != null && sidecar.isRunning()) {
      sidecar.close();
    }
    if (triton != null) {
      triton.close();
    }
    s3.close();
  }

  static TritonFront front() {
    return sidecar.getBean(TritonFront.class);
  }

  @Test
  @Order(1)
  void aFirstRequestOnTritonsPortLoadsTheModelAndIsAColdStartWithItsTimelineAndMetrics() throws Exception {
    var stub = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(60));
    assertThat(stub.modelInfer(request("mlp", "first")).getId()).isEqualTo("first");

    JsonNode coldStart = await().atMost(Duration.ofSeconds(10)).until(() -> coldStartOf("mlp"),
        c -> c != null && c.path("complete").asBoolean() && c.path("events_ms").has("first_inference"));
    JsonNode events = coldStart.path("events_ms");
    assertThat(events.has("mounted") && events.has("first_byte") && events.has("server_ready")).as(events.toString())
        .isTrue();
    assertThat(events.path("first_byte").asDouble()).isLessThanOrEqualTo(events.path("server_ready").asDouble());
    assertThat(events.path("server_ready").asDouble()).isLessThanOrEqualTo(events.path("first_inference").asDouble());
    assertThat(coldStart.path("bytes").path("read").asLong()).as("the model's bytes read for its load").isPositive();

    String metrics = get("/metrics").body();
    assertThat(metrics).contains("thaw_triton_loads_total{outcome=\"loaded\"} 1.0",
        "thaw_triton_served_from_zero_seconds_count{part=\"total\"} 1", "thaw_cold_start_phase_seconds_count");
  }

  @Test
  @Order(2)
  void overHttpAModelWithItsOwnIdleTimeIsUnloadedWhenIdleAndLoadsAgain() throws Exception {
    String body = TritonFixtures.jsonInferRequest(spec, 1);
    URI infer = URI.create("http://127.0.0.1:" + front().httpPort().orElseThrow() + "/v2/models/brief/infer");
    assertThat(HTTP.send(HttpRequest.newBuilder(infer).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(200);

    var direct = Grpc.newChannelBuilder("127.0.0.1:" + triton.grpcPort(), InsecureChannelCredentials.create()).build();
    try {
      var tritonItself = GRPCInferenceServiceGrpc.newBlockingStub(direct);
      await().atMost(Duration.ofSeconds(30)).until(() -> !tritonItself.withDeadlineAfter(Duration.ofSeconds(10))
          .modelReady(ModelReadyRequest.newBuilder().setName("brief").build()).getReady());
      assertThat(tritonItself.withDeadlineAfter(Duration.ofSeconds(10))
          .modelReady(ModelReadyRequest.newBuilder().setName("mlp").build()).getReady())
          .as("mlp has no idle time: it stays").isTrue();
    } finally {
      direct.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    assertThat(get("/metrics").body()).contains("thaw_triton_unloads_total 1.0");
    assertThat(HTTP.send(HttpRequest.newBuilder(infer).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString()).statusCode()).as("loaded again").isEqualTo(200);
  }

  @Test
  @Order(3)
  void aRepositoryTritonCouldReadWithoutThawIsRefusedAtStartInOneLine() {
    Map<String, Object> settings = SidecarSettings.standalone(tmp.resolve("refused"), tmp.resolve("origin").toUri()
        .toString());
    settings.put("thaw.triton.enabled", true);
    settings.put("thaw.triton.repositories", "/srv/models");
    settings.put("thaw.triton.http-port", 0);
    settings.put("thaw.triton.grpc-port", 0);

    assertThatThrownBy(() -> Sidecar.start(settings)).isInstanceOf(IllegalStateException.class)
        .hasMessage("thaw.triton.repositories: /srv/models is a local directory; give it to Triton as it is (Thaw "
            + "mounts s3:// and thaw:// repositories)");
  }

  @Test
  @Order(4)
  void whenTheSidecarStopsTheRepositorysProfileHoldsTheModelsLoaded() throws Exception {
    Path profiles = tmp.resolve("cache/profiles");
    sidecar.close(); // Triton's container would stop first; its mount ends with the sidecar

    try (Stream<Path> saved = Files.list(profiles)) {
      Path profile = saved.findFirst().orElseThrow();
      String json = Files.readString(profile);
      assertThat(json).as("a direct-mode repository's profile stays on the node").contains("mlp/1/model.onnx",
          "brief/1/model.onnx");
    }
    assertThat(MountTable.find(repository)).isEmpty();
  }

  private static JsonNode coldStartOf(String model) throws Exception {
    for (JsonNode c : JSON.readTree(get("/v1/coldstarts").body())) {
      if (c.path("model").asText().equals(model)) {
        return c;
      }
    }
    return null;
  }

  private static HttpResponse<String> get(String path) throws Exception {
    return HTTP.send(SidecarSettings.api(sidecar, path).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static ModelInferRequest request(String model, String id) {
    InferTensorContents.Builder contents = InferTensorContents.newBuilder();
    for (float v : spec.sampleInput(1)) {
      contents.addFp32Contents(v);
    }
    return ModelInferRequest.newBuilder().setModelName(model).setId(id)
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName("input").setDatatype("FP32")
            .addShape(1).addShape(spec.inputDim()).setContents(contents))
        .build();
  }
}
