package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.assertMatchesReference;
import static dev.thaw.examples.ortserver.OrtServerTesting.bytes;
import static dev.thaw.examples.ortserver.OrtServerTesting.floats;
import static dev.thaw.examples.ortserver.OrtServerTesting.rawRequest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.ByteString;
import dev.thaw.triton.protocol.DataType;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.HealthCheckRequest;
import dev.thaw.triton.protocol.HealthCheckResponse;
import dev.thaw.triton.protocol.HealthGrpc;
import dev.thaw.triton.protocol.InferTensorContents;
import dev.thaw.triton.protocol.ModelConfig;
import dev.thaw.triton.protocol.ModelConfigRequest;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelMetadataRequest;
import dev.thaw.triton.protocol.ModelMetadataResponse;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.ServerLiveRequest;
import dev.thaw.triton.protocol.ServerMetadataRequest;
import dev.thaw.triton.protocol.ServerMetadataResponse;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The gRPC protocol against a server in "none" mode serving one generated MLP. */
class OrtServerGrpcTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static ManagedChannel channel;
  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub grpc;

  @BeforeAll
  static void startServer() throws Exception {
    spec = OrtServerTesting.generate(repository, "mlp", 7);
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
  void infersBatchOneFromRawContents() {
    ModelInferResponse response = grpc.modelInfer(rawRequest("mlp", spec, 1));

    assertThat(response.getModelName()).isEqualTo("mlp");
    assertThat(response.getModelVersion()).isEqualTo("1");
    assertThat(response.getOutputsList()).singleElement().satisfies(o -> {
      assertThat(o.getName()).isEqualTo(MlpGenerator.OUTPUT);
      assertThat(o.getDatatype()).isEqualTo("FP32");
      assertThat(o.getShapeList()).containsExactly(1L, (long) spec.outputDim());
    });
    assertMatchesReference(floats(response.getRawOutputContents(0)), spec, 1);
  }

  @Test
  void infersBatchThreeFromRawContents() {
    ModelInferResponse response = grpc.modelInfer(rawRequest("mlp", spec, 3));

    assertThat(response.getOutputs(0).getShapeList()).containsExactly(3L, (long) spec.outputDim());
    assertMatchesReference(floats(response.getRawOutputContents(0)), spec, 3);
  }

  @Test
  void infersFromTypedContentsAndEchoesTheRequestId() {
    InferTensorContents.Builder contents = InferTensorContents.newBuilder();
    for (float v : spec.sampleInput(3)) {
      contents.addFp32Contents(v);
    }
    ModelInferRequest request = ModelInferRequest.newBuilder().setModelName("mlp").setModelVersion("1")
        .setId("request-42")
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName("input").setDatatype("FP32")
            .addShape(3).addShape(spec.inputDim()).setContents(contents))
        .addOutputs(ModelInferRequest.InferRequestedOutputTensor.newBuilder().setName("output"))
        .build();

    ModelInferResponse response = grpc.modelInfer(request);

    assertThat(response.getId()).isEqualTo("request-42");
    assertMatchesReference(floats(response.getRawOutputContents(0)), spec, 3);
  }

  @Test
  void streamAnswersEveryRequestAndCarriesErrorsInBand() throws Exception {
    ModelInferRequest bad = rawRequest("mlp", spec, 1).toBuilder()
        .setInputs(0, rawRequest("mlp", spec, 1).getInputs(0).toBuilder().setShape(1, spec.inputDim() - 1))
        .build();

    List<ModelStreamInferResponse> responses = stream(rawRequest("mlp", spec, 1).toBuilder().setId("first").build(),
        bad, rawRequest("mlp", spec, 3).toBuilder().setId("third").build());

    assertThat(responses).hasSize(3);
    assertThat(responses.get(0).getErrorMessage()).isEmpty();
    assertThat(responses.get(0).getInferResponse().getId()).isEqualTo("first");
    assertMatchesReference(floats(responses.get(0).getInferResponse().getRawOutputContents(0)), spec, 1);
    assertThat(responses.get(1).getErrorMessage()).isEqualTo("unexpected shape for input 'input' for model 'mlp'. "
        + "Expected [-1,256], got [1,255]");
    assertThat(responses.get(2).getInferResponse().getId()).isEqualTo("third");
    assertMatchesReference(floats(responses.get(2).getInferResponse().getRawOutputContents(0)), spec, 3);
  }

  @Test
  void streamErrorCarriesTheFailedRequestsIdAsTritonDoes() throws Exception {
    ModelInferRequest good = rawRequest("mlp", spec, 1);
    ModelInferRequest wrongShape = good.toBuilder().setId("wrong-shape")
        .setInputs(0, good.getInputs(0).toBuilder().setShape(1, spec.inputDim() - 1)).build();
    ModelInferRequest unknownModel = good.toBuilder().setId("unknown-model").setModelName("nope").build();

    List<ModelStreamInferResponse> responses = stream(good.toBuilder().setId("ok").build(), wrongShape,
        unknownModel);

    assertThat(responses).extracting(r -> r.getInferResponse().getId())
        .containsExactly("ok", "wrong-shape", "unknown-model");
    assertThat(responses.get(1).getErrorMessage()).startsWith("unexpected shape for input 'input'");
    assertThat(responses.get(2).getErrorMessage()).isEqualTo("Request for unknown model: 'nope' is not found");
    // An error response has the id and nothing else: no outputs a client could mistake for an answer.
    assertThat(responses.get(1).getInferResponse())
        .isEqualTo(ModelInferResponse.newBuilder().setId("wrong-shape").build());
  }

  @Test
  void servesTheStandardGrpcHealthCheckAsServingWhileReady() {
    HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel)
        .withDeadlineAfter(Duration.ofSeconds(30));

    assertThat(health.check(HealthCheckRequest.getDefaultInstance()).getStatus())
        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    assertThat(health.check(HealthCheckRequest.newBuilder().setService("inference.GRPCInferenceService").build())
        .getStatus()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    StatusRuntimeException unknown = catchThrowableOfType(StatusRuntimeException.class,
        () -> health.check(HealthCheckRequest.newBuilder().setService("other.Service").build()));
    assertThat(unknown.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
    assertThat(unknown.getStatus().getDescription()).startsWith("unknown service 'other.Service'");
  }

  @Test
  void reportsHealthAndServerMetadata() {
    assertThat(grpc.serverLive(ServerLiveRequest.getDefaultInstance()).getLive()).isTrue();
    assertThat(grpc.serverReady(ServerReadyRequest.getDefaultInstance()).getReady()).isTrue();
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("mlp").build()).getReady()).isTrue();
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("mlp").setVersion("1").build()).getReady())
        .isTrue();
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("mlp").setVersion("2").build()).getReady())
        .isFalse();
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("nope").build()).getReady()).isFalse();

    ServerMetadataResponse metadata = grpc.serverMetadata(ServerMetadataRequest.getDefaultInstance());
    assertThat(metadata.getName()).isEqualTo("ort-server");
    assertThat(metadata.getExtensionsList()).contains("binary_tensor_data", "model_repository");
  }

  @Test
  void describesTheModel() {
    ModelMetadataResponse metadata = grpc.modelMetadata(ModelMetadataRequest.newBuilder().setName("mlp").build());

    assertThat(metadata.getName()).isEqualTo("mlp");
    assertThat(metadata.getVersionsList()).containsExactly("1");
    assertThat(metadata.getPlatform()).isEqualTo("onnxruntime_onnx");
    assertThat(metadata.getInputsList()).singleElement().satisfies(t -> {
      assertThat(t.getName()).isEqualTo("input");
      assertThat(t.getDatatype()).isEqualTo("FP32");
      assertThat(t.getShapeList()).containsExactly(-1L, (long) spec.inputDim());
    });
    assertThat(metadata.getOutputs(0).getShapeList()).containsExactly(-1L, (long) spec.outputDim());

    ModelConfig config = grpc.modelConfig(ModelConfigRequest.newBuilder().setName("mlp").build()).getConfig();
    assertThat(config.getName()).isEqualTo("mlp");
    assertThat(config.getPlatform()).isEqualTo("onnxruntime_onnx");
    assertThat(config.getBackend()).isEqualTo("onnxruntime");
    assertThat(config.getMaxBatchSize()).isEqualTo(MlpGenerator.MAX_BATCH_SIZE);
    assertThat(config.getInput(0).getDataType()).isEqualTo(DataType.TYPE_FP32);
    assertThat(config.getInput(0).getDimsList()).containsExactly((long) spec.inputDim());
  }

  @Test
  void indexesTheRepository() {
    RepositoryIndexResponse index = grpc.repositoryIndex(RepositoryIndexRequest.getDefaultInstance());

    assertThat(index.getModelsList()).singleElement().satisfies(m -> {
      assertThat(m.getName()).isEqualTo("mlp");
      assertThat(m.getVersion()).isEqualTo("1");
      assertThat(m.getState()).isEqualTo("READY");
      assertThat(m.getReason()).isEmpty();
    });
  }

  @Test
  void refusesLoadAndUnloadInNoneMode() {
    assertError(g -> g.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("mlp").build()),
        Status.Code.UNAVAILABLE, "explicit model load / unload is not allowed if polling is enabled");
    assertError(g -> g.repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("mlp").build()),
        Status.Code.UNAVAILABLE, "explicit model load / unload is not allowed if polling is enabled");
    assertThat(grpc.modelReady(ModelReadyRequest.newBuilder().setName("mlp").build()).getReady()).isTrue();
  }

  @Test
  void answersAnUnknownModelWithNotFound() {
    assertError(g -> g.modelInfer(rawRequest("nope", spec, 1)), Status.Code.NOT_FOUND,
        "Request for unknown model: 'nope' is not found");
    assertError(g -> g.modelMetadata(ModelMetadataRequest.newBuilder().setName("nope").build()),
        Status.Code.NOT_FOUND, "Request for unknown model: 'nope' is not found");
    assertError(g -> g.modelInfer(rawRequest("mlp", spec, 1).toBuilder().setModelVersion("3").build()),
        Status.Code.NOT_FOUND, "Request for unknown model: 'mlp' version 3 is not found");
  }

  @Test
  void answersBadRequestsWithTritonsInvalidArgumentErrors() {
    ModelInferRequest good = rawRequest("mlp", spec, 1);
    ModelInferRequest.InferInputTensor input = good.getInputs(0);

    assertError(g -> g.modelInfer(good.toBuilder().setInputs(0, input.toBuilder().setShape(1, 255)).build()),
        Status.Code.INVALID_ARGUMENT,
        "unexpected shape for input 'input' for model 'mlp'. Expected [-1,256], got [1,255]");
    assertError(g -> g.modelInfer(good.toBuilder().setInputs(0, input.toBuilder().setDatatype("FP64")).build()),
        Status.Code.INVALID_ARGUMENT, "inference input data-type is 'FP64', model expects 'FP32' for 'mlp'");
    assertError(g -> g.modelInfer(ModelInferRequest.newBuilder().setModelName("mlp").build()),
        Status.Code.INVALID_ARGUMENT, "expected 1 inputs but got 0 inputs for model 'mlp'");
    assertError(g -> g.modelInfer(good.toBuilder().setInputs(0, input.toBuilder().setName("x")).build()),
        Status.Code.INVALID_ARGUMENT, "unexpected inference input 'x' for model 'mlp'");
    assertError(g -> g.modelInfer(good.toBuilder()
            .setRawInputContents(0, good.getRawInputContents(0).substring(4)).build()),
        Status.Code.INVALID_ARGUMENT,
        "input byte size mismatch for input 'input' for model 'mlp'. Expected 1024, got 1020");
    assertError(g -> g.modelInfer(rawRequest("mlp", spec, MlpGenerator.MAX_BATCH_SIZE + 1)),
        Status.Code.INVALID_ARGUMENT, "inference request batch-size must be <= 8 for 'mlp'");
    assertError(g -> g.modelInfer(good.toBuilder()
            .addOutputs(ModelInferRequest.InferRequestedOutputTensor.newBuilder().setName("nope")).build()),
        Status.Code.INVALID_ARGUMENT, "unexpected inference output 'nope' for model 'mlp'");
    assertError(g -> g.modelInfer(good.toBuilder().clearRawInputContents().build()), Status.Code.INVALID_ARGUMENT,
        "unable to find data for input tensor 'input' for model 'mlp' in request.");
    assertError(g -> g.modelInfer(good.toBuilder().setInputs(0, input.toBuilder()
            .setContents(InferTensorContents.newBuilder().addFp32Contents(1f))).build()),
        Status.Code.INVALID_ARGUMENT,
        "contents field must not be specified when using raw_input_contents for 'input' for model 'mlp'");
    assertError(g -> g.modelInfer(good.toBuilder().addRawInputContents(ByteString.copyFrom(bytes(new float[2])))
            .build()),
        Status.Code.INVALID_ARGUMENT,
        "expected 1 raw input contents but got 2 for model 'mlp' (one per input, in the order of the inputs)");
  }

  /** Sends {@code requests} on one ModelStreamInfer stream, closes it, and returns every response. */
  private static List<ModelStreamInferResponse> stream(ModelInferRequest... requests) throws Exception {
    List<ModelStreamInferResponse> responses = new CopyOnWriteArrayList<>();
    CountDownLatch done = new CountDownLatch(1);
    StreamObserver<ModelInferRequest> sender = GRPCInferenceServiceGrpc.newStub(channel).modelStreamInfer(
        new StreamObserver<>() {
          @Override
          public void onNext(ModelStreamInferResponse r) {
            responses.add(r);
          }

          @Override
          public void onError(Throwable t) {
            done.countDown();
          }

          @Override
          public void onCompleted() {
            done.countDown();
          }
        });
    for (ModelInferRequest request : requests) {
      sender.onNext(request);
    }
    sender.onCompleted();
    assertThat(done.await(30, TimeUnit.SECONDS)).as("the stream ends").isTrue();
    return responses;
  }

  private static void assertError(Function<GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub, ?> call,
      Status.Code code, String message) {
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () -> call.apply(grpc));
    assertThat(e).as("expected %s: %s", code, message).isNotNull();
    assertThat(e.getStatus().getCode()).isEqualTo(code);
    assertThat(e.getStatus().getDescription()).isEqualTo(message);
  }
}
