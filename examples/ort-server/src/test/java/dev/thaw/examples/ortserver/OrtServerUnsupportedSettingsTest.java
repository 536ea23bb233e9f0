package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.assertMatchesReference;
import static dev.thaw.examples.ortserver.OrtServerTesting.floats;
import static dev.thaw.examples.ortserver.OrtServerTesting.get;
import static dev.thaw.examples.ortserver.OrtServerTesting.json;
import static dev.thaw.examples.ortserver.OrtServerTesting.post;
import static dev.thaw.examples.ortserver.OrtServerTesting.rawRequest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelConfig;
import dev.thaw.triton.protocol.ModelConfigRequest;
import dev.thaw.triton.protocol.ModelInstanceGroup;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Model settings Triton honours and ort-server does not implement are refused when the model loads, with one line
 * naming each of them, over gRPC and HTTP alike; settings that only tune speed on a CPU load, and are echoed.
 */
class OrtServerUnsupportedSettingsTest {
  private static final String REMEDY = "; remove it, or serve the model with Triton";

  @TempDir
  static Path repository;
  static MlpSpec tuned;
  static OrtServer server;
  static ManagedChannel channel;
  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub grpc;

  @BeforeAll
  static void startServer() throws Exception {
    OrtServerTesting.generate(repository, "good", 1);
    model("dynamic", "dynamic_batching { max_queue_delay_microseconds: 100 }");
    model("sequence", """
        sequence_batching {
          control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
        }""");
    model("gpu", "instance_group [ { name: \"on_gpu\" kind: KIND_GPU count: 1 } ]");
    model("several", """
        dynamic_batching { }
        model_warmup [ { name: "zeros" batch_size: 1 inputs { key: "input" value {
          data_type: TYPE_FP32 dims: [ 256 ] zero_data: true } } } ]
        model_transaction_policy { decoupled: true }""");
    model("typo", "dynamic_batchin { }");
    tuned = model("tuned", """
        instance_group [ { kind: KIND_CPU count: 2 } ]
        response_cache { enable: true }
        model_metrics { metric_control [ { metric_identifier { family: "nv_inference_request_duration" }
                                          histogram_options { buckets: [ 1, 10, 100 ] } } ] }""");
    server = OrtServerTesting.start(repository, "--model-control-mode=explicit", "--load-model=good");
    channel = OrtServerTesting.channel(server);
    grpc = OrtServerTesting.stub(channel);
  }

  @AfterAll
  static void stopServer() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.close();
  }

  @Test
  void refusesDynamicBatchingAtLoadWithOneLineNamingIt() {
    StatusRuntimeException e = loadOverGrpc("dynamic");

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(e.getStatus().getDescription()).isEqualTo("load failed for model 'dynamic': " + config("dynamic")
        + " asks for what ort-server does not implement: dynamic_batching (no dynamic batcher: each request runs on"
        + " its own)" + REMEDY);
  }

  @Test
  void refusesSequenceBatchingAtLoadOverHttp() throws Exception {
    HttpResponse<byte[]> load = post(server, "/v2/repository/models/sequence/load", "");

    assertThat(load.statusCode()).isEqualTo(400);
    assertThat(json(load).get("error").asText()).isEqualTo("load failed for model 'sequence': " + config("sequence")
        + " asks for what ort-server does not implement: sequence_batching (no sequence batcher: no correlation IDs,"
        + " sequence controls or implicit state)" + REMEDY);
  }

  @Test
  void refusesAGpuInstanceGroupOnThisCpuServer() {
    StatusRuntimeException e = loadOverGrpc("gpu");

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(e.getStatus().getDescription()).isEqualTo("load failed for model 'gpu': " + config("gpu")
        + " asks for what ort-server does not implement: instance_group 'on_gpu' kind KIND_GPU (CPU only: use"
        + " KIND_CPU)" + REMEDY);
  }

  @Test
  void namesEveryRefusedSettingOfAModelInOneLine() {
    String message = loadOverGrpc("several").getStatus().getDescription();

    assertThat(message).isEqualTo("load failed for model 'several': " + config("several")
        + " asks for what ort-server does not implement: dynamic_batching (no dynamic batcher: each request runs on"
        + " its own), model_warmup (start ort-server with --warmup instead: one inference of zeros per model),"
        + " model_transaction_policy decoupled (exactly one response per request); remove them, or serve the model"
        + " with Triton");
    assertThat(message).doesNotContain("\n");
  }

  @Test
  void neitherServesNorEchoesTheConfigurationOfARefusedModel() throws Exception {
    loadOverGrpc("dynamic");

    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
        () -> grpc.modelConfig(ModelConfigRequest.newBuilder().setName("dynamic").build()));
    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
    assertThat(get(server, "/v2/models/dynamic/config").statusCode()).isEqualTo(404);
    RepositoryIndexResponse.ModelIndex index = grpc.repositoryIndex(RepositoryIndexRequest.getDefaultInstance())
        .getModelsList().stream().filter(m -> m.getName().equals("dynamic")).findFirst().orElseThrow();
    assertThat(index.getState()).isEqualTo("UNAVAILABLE");
    assertThat(index.getReason()).startsWith(config("dynamic") + " asks for what ort-server does not implement:"
        + " dynamic_batching");
  }

  @Test
  void refusesAMisspelledSettingInsteadOfSkippingIt() {
    StatusRuntimeException e = loadOverGrpc("typo");

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(e.getStatus().getDescription())
        .startsWith("load failed for model 'typo': invalid model configuration " + config("typo") + ": ")
        .contains("dynamic_batchin");
  }

  @Test
  void loadsSettingsThatOnlyTuneSpeedOnACpuAndEchoesThem() throws Exception {
    grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("tuned").build());

    assertMatchesReference(floats(grpc.modelInfer(rawRequest("tuned", tuned, 2)).getRawOutputContents(0)), tuned, 2);
    ModelConfig config = grpc.modelConfig(ModelConfigRequest.newBuilder().setName("tuned").build()).getConfig();
    assertThat(config.getInstanceGroup(0).getKind()).isEqualTo(ModelInstanceGroup.Kind.KIND_CPU);
    assertThat(config.getInstanceGroup(0).getCount()).isEqualTo(2);
    assertThat(config.getResponseCache().getEnable()).isTrue();
    assertThat(config.getModelMetrics().getMetricControl(0).getHistogramOptions().getBucketsList())
        .containsExactly(1.0, 10.0, 100.0);
    JsonNode http = json(get(server, "/v2/models/tuned/config"));
    assertThat(http.get("model_metrics").get("metric_control").get(0).get("metric_identifier").get("family")
        .asText()).isEqualTo("nv_inference_request_duration");
  }

  private static StatusRuntimeException loadOverGrpc(String model) {
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
        () -> grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName(model).build()));
    assertThat(e).as("the load of '%s' fails", model).isNotNull();
    return e;
  }

  /** A generated MLP whose config.pbtxt has {@code settings} appended. */
  private static MlpSpec model(String name, String settings) throws IOException {
    MlpSpec spec = OrtServerTesting.generate(repository, name, name.hashCode());
    Files.writeString(config(name), Files.readString(config(name)) + settings + "\n");
    return spec;
  }

  private static Path config(String name) {
    return repository.resolve(name).resolve("config.pbtxt");
  }
}
