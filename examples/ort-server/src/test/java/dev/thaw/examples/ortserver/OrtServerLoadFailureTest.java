package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.assertMatchesReference;
import static dev.thaw.examples.ortserver.OrtServerTesting.floats;
import static dev.thaw.examples.ortserver.OrtServerTesting.get;
import static dev.thaw.examples.ortserver.OrtServerTesting.json;
import static dev.thaw.examples.ortserver.OrtServerTesting.jsonInferRequest;
import static dev.thaw.examples.ortserver.OrtServerTesting.post;
import static dev.thaw.examples.ortserver.OrtServerTesting.rawRequest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.HealthCheckRequest;
import dev.thaw.triton.protocol.HealthCheckResponse;
import dev.thaw.triton.protocol.HealthGrpc;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A repository where most models are broken, each in its own way: every broken model fails its load with a reason
 * that names what is wrong, the server is not ready, and the one good model is served all the same.
 */
class OrtServerLoadFailureTest {
  @TempDir
  static Path repository;
  static MlpSpec good;
  static OrtServer server;
  static ManagedChannel channel;
  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub grpc;

  @BeforeAll
  static void startServer() throws Exception {
    good = OrtServerTesting.generate(repository, "good", 5);

    OrtServerTesting.generate(repository, "truncated", 6);
    try (Stream<Path> files = Files.list(repository.resolve("truncated/1"))) {
      Path weights = files.filter(p -> p.getFileName().toString().startsWith("weights-")).findFirst().orElseThrow();
      try (RandomAccessFile f = new RandomAccessFile(weights.toFile(), "rw")) {
        f.setLength(f.length() / 2);
      }
    }
    OrtServerTesting.generate(repository, "garbage", 7);
    Files.write(repository.resolve("garbage/1/model.onnx"), "not a protobuf at all".getBytes(StandardCharsets.UTF_8));
    OrtServerTesting.generate(repository, "noconfig", 8);
    Files.delete(repository.resolve("noconfig/config.pbtxt"));
    OrtServerTesting.generate(repository, "nomodel", 9);
    Files.delete(repository.resolve("nomodel/1/model.onnx"));
    OrtServerTesting.generate(repository, "tensorrt", 10);
    rewriteConfig("tensorrt", "onnxruntime_onnx", "tensorrt_plan");
    OrtServerTesting.generate(repository, "wrongdims", 11);
    rewriteConfig("wrongdims", "dims: [ 256 ]", "dims: [ 255 ]");
    OrtServerTesting.generate(repository, "badsyntax", 12);
    rewriteConfig("badsyntax", "max_batch_size: 8", "max_batch_size 8 }");

    server = OrtServerTesting.start(repository);
    channel = OrtServerTesting.channel(server);
    grpc = OrtServerTesting.stub(channel);
  }

  @AfterAll
  static void stopServer() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.close();
  }

  @Test
  void isNotReadyWhileAModelFailedToLoad() throws Exception {
    assertThat(grpc.serverReady(ServerReadyRequest.getDefaultInstance()).getReady()).isFalse();
    HttpResponse<byte[]> ready = get(server, "/v2/health/ready");
    assertThat(ready.statusCode()).isEqualTo(400);
    assertThat(ready.body()).isEmpty();
    assertThat(get(server, "/v2/health/live").statusCode()).isEqualTo(200);
  }

  @Test
  void healthCheckIsNotServingWhileAModelFailedToLoad() {
    HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel)
        .withDeadlineAfter(Duration.ofSeconds(30));

    assertThat(health.check(HealthCheckRequest.getDefaultInstance()).getStatus())
        .isEqualTo(HealthCheckResponse.ServingStatus.NOT_SERVING);
  }

  @Test
  void servesTheGoodModelAllTheSame() throws Exception {
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("good").build()).getReady()).isTrue();
    assertMatchesReference(floats(grpc.modelInfer(rawRequest("good", good, 2)).getRawOutputContents(0)), good, 2);
    JsonNode body = json(post(server, "/v2/models/good/infer", jsonInferRequest(good, 1)));
    assertMatchesReference(floats(body.get("outputs").get(0).get("data")), good, 1);
  }

  @Test
  void indexesEveryFailureWithAReasonNamingTheCulprit() throws Exception {
    Map<String, JsonNode> index = new HashMap<>();
    for (JsonNode entry : json(post(server, "/v2/repository/index", ""))) {
      index.put(entry.get("name").asText(), entry);
    }
    assertThat(index).containsOnlyKeys("good", "truncated", "garbage", "noconfig", "nomodel", "tensorrt",
        "wrongdims", "badsyntax");
    assertThat(index.get("good").get("state").asText()).isEqualTo("READY");
    for (String broken : List.of("truncated", "garbage", "noconfig", "nomodel", "tensorrt", "wrongdims",
        "badsyntax")) {
      assertThat(index.get(broken).get("state").asText()).as(broken).isEqualTo("UNAVAILABLE");
    }
    assertThat(reason(index, "truncated")).startsWith("ONNX Runtime cannot load " + model("truncated"))
        .contains("out of bounds");
    assertThat(reason(index, "garbage")).startsWith("ONNX Runtime cannot load " + model("garbage"))
        .contains("Protobuf parsing failed");
    assertThat(reason(index, "noconfig"))
        .isEqualTo("model configuration " + repository.resolve("noconfig/config.pbtxt") + " does not exist");
    assertThat(reason(index, "nomodel")).isEqualTo("model file " + model("nomodel") + " does not exist");
    assertThat(reason(index, "tensorrt")).isEqualTo(repository.resolve("tensorrt/config.pbtxt")
        + " asks for platform 'tensorrt_plan', but ort-server serves only 'onnxruntime_onnx'");
    assertThat(reason(index, "wrongdims")).isEqualTo("model 'wrongdims', tensor 'input': the model has shape"
        + " [-1,256], but " + repository.resolve("wrongdims/config.pbtxt") + " configures [-1,255]"
        + " (max_batch_size > 0 puts the batch dimension first)");
    assertThat(reason(index, "badsyntax"))
        .startsWith("invalid model configuration " + repository.resolve("badsyntax/config.pbtxt") + ": ");
  }

  @Test
  void answersRequestsForAFailedModelAsTritonDoes() {
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("truncated").build()).getReady()).isFalse();
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
        () -> grpc.modelInfer(rawRequest("truncated", good, 1)));
    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
    assertThat(e.getStatus().getDescription())
        .isEqualTo("Request for unknown model: 'truncated' has no available versions");
  }

  private static String reason(Map<String, JsonNode> index, String model) {
    return index.get(model).get("reason").asText();
  }

  private static String model(String name) {
    return repository.resolve(name).resolve("1").resolve("model.onnx").toString();
  }

  private static void rewriteConfig(String model, String from, String to) throws IOException {
    Path config = repository.resolve(model).resolve("config.pbtxt");
    String text = Files.readString(config);
    assertThat(text).contains(from);
    Files.writeString(config, text.replace(from, to));
  }
}
