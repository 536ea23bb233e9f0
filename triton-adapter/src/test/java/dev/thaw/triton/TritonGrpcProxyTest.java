package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub;
import dev.thaw.triton.protocol.HealthCheckRequest;
import dev.thaw.triton.protocol.HealthGrpc;
import dev.thaw.triton.protocol.ModelConfigRequest;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelMetadataRequest;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.ServerLiveRequest;
import dev.thaw.triton.protocol.ServerMetadataRequest;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Triton's gRPC protocol through the proxy against the real example server (ONNX Runtime, explicit model control):
 * whatever a client asks, it gets the answer it would get from the server directly.
 */
class TritonGrpcProxyTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static TritonGrpcProxy proxy;
  static ManagedChannel directChannel;
  static ManagedChannel proxyChannel;
  static GRPCInferenceServiceBlockingStub direct;
  static GRPCInferenceServiceBlockingStub viaProxy;

  @BeforeAll
  static void start() throws Exception {
    spec = MlpSpec.forSize(1L << 20, 5);
    MlpGenerator.generate(repository, "mlp", spec);
    MlpGenerator.generate(repository, "spare", MlpSpec.forSize(256L << 10, 6));
    server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
        "--http-port=0", "--model-control-mode=explicit", "--load-model=mlp",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).isTrue();
    proxy = TritonGrpcProxy.start(new InetSocketAddress("127.0.0.1", 0), "127.0.0.1:" + server.grpcPort());
    directChannel = ProxyTesting.channel(server.grpcPort());
    proxyChannel = ProxyTesting.channel(proxy.port());
    direct = stub(directChannel);
    viaProxy = stub(proxyChannel);
  }

  @AfterAll
  static void stop() throws Exception {
    proxyChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    directChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    proxy.close();
    server.close();
  }

  @Test
  void everyMethodOfTheProtocolAnswersThroughTheProxyAsItDoesDirect() {
    assertSameAnswer(s -> s.serverLive(ServerLiveRequest.getDefaultInstance()));
    assertSameAnswer(s -> s.serverReady(ServerReadyRequest.getDefaultInstance()));
    assertSameAnswer(s -> s.serverMetadata(ServerMetadataRequest.getDefaultInstance()));
    assertSameAnswer(s -> s.modelReady(ModelReadyRequest.newBuilder().setName("mlp").build()));
    assertSameAnswer(s -> s.modelReady(ModelReadyRequest.newBuilder().setName("spare").build()));
    assertSameAnswer(s -> s.modelMetadata(ModelMetadataRequest.newBuilder().setName("mlp").build()));
    assertSameAnswer(s -> s.modelConfig(ModelConfigRequest.newBuilder().setName("mlp").build()));
    assertSameAnswer(s -> s.repositoryIndex(RepositoryIndexRequest.getDefaultInstance()));
    ModelInferResponse answer = assertSameAnswer(s -> s.modelInfer(request("mlp", 3, "r-3")));
    assertThat(answer.getId()).isEqualTo("r-3");
    assertThat(answer.getRawOutputContents(0).size()).isEqualTo(3 * spec.outputDim() * 4);
  }

  @Test
  void aFailureComesBackWithTheServersCodeAndMessage() {
    for (Function<GRPCInferenceServiceBlockingStub, ?> call : List.<Function<GRPCInferenceServiceBlockingStub, ?>>of(
        s -> s.modelInfer(request("no-such-model", 1, "x")),
        s -> s.modelConfig(ModelConfigRequest.newBuilder().setName("no-such-model").build()),
        s -> s.modelInfer(request("spare", 1, "not loaded")))) {
      Status expected = catchThrowableOfType(StatusRuntimeException.class, () -> call.apply(direct)).getStatus();
      Status actual = catchThrowableOfType(StatusRuntimeException.class, () -> call.apply(viaProxy)).getStatus();

      assertThat(actual.getCode()).isEqualTo(expected.getCode()).isNotEqualTo(Status.Code.OK);
      assertThat(actual.getDescription()).isEqualTo(expected.getDescription()).isNotBlank();
    }
  }

  @Test
  void loadsAndUnloadsThroughTheProxyReachTheServer() {
    ModelReadyRequest spareReady = ModelReadyRequest.newBuilder().setName("spare").build();

    viaProxy.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("spare").build());
    assertThat(direct.modelReady(spareReady).getReady()).isTrue();

    viaProxy.repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("spare").build());
    assertThat(direct.modelReady(spareReady).getReady()).isFalse();
  }

  @Test
  void methodsOutsideTheInferenceServicePassThroughToo() {
    // Triton's health service, which the proxy has no stub for
    assertThat(HealthGrpc.newBlockingStub(proxyChannel).withDeadlineAfter(Duration.ofSeconds(10))
        .check(HealthCheckRequest.getDefaultInstance()))
        .isEqualTo(HealthGrpc.newBlockingStub(directChannel).withDeadlineAfter(Duration.ofSeconds(10))
            .check(HealthCheckRequest.getDefaultInstance()));
    // a method of Triton's this server lacks: the server's own answer, not the proxy's
    MethodDescriptor<byte[], byte[]> statistics = ProxyTesting.method(
        "inference.GRPCInferenceService/ModelStatistics", MethodDescriptor.MethodType.UNARY);
    Status expected = catchThrowableOfType(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(
        directChannel, statistics, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), new byte[0]))
        .getStatus();
    Status actual = catchThrowableOfType(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(
        proxyChannel, statistics, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), new byte[0]))
        .getStatus();
    assertThat(actual.getCode()).isEqualTo(expected.getCode()).isEqualTo(Status.Code.UNIMPLEMENTED);
    assertThat(actual.getDescription()).isEqualTo(expected.getDescription());
  }

  @Test
  void aStreamOfAThousandRequestsIsAnsweredInOrderWithTheServersAnswers() throws Exception {
    int n = 1000;
    ProxyTesting.StreamAnswers into = new ProxyTesting.StreamAnswers();
    StreamObserver<ModelInferRequest> requests = ProxyTesting.StreamAnswers.open(proxyChannel, into);
    List<ModelStreamInferResponse> answers = into.answers;
    for (int i = 0; i < n; i++) {
      requests.onNext(request("mlp", 1 + i % 4, "s-" + i));
    }
    requests.onCompleted();
    into.done.get(120, TimeUnit.SECONDS);

    assertThat(answers).hasSize(n);
    for (int batch = 1; batch <= 4; batch++) {
      ByteString expected = direct.modelInfer(request("mlp", batch, "d")).getRawOutputContents(0);
      for (int i = batch - 1; i < n; i += 4) {
        ModelStreamInferResponse answer = answers.get(i);
        assertThat(answer.getErrorMessage()).isEmpty();
        assertThat(answer.getInferResponse().getId()).isEqualTo("s-" + i);
        assertThat(answer.getInferResponse().getRawOutputContents(0)).isEqualTo(expected);
      }
    }
  }

  private static <T extends Message> T assertSameAnswer(Function<GRPCInferenceServiceBlockingStub, T> call) {
    T expected = call.apply(direct);
    T actual = call.apply(viaProxy);
    assertThat(actual).isEqualTo(expected);
    return actual;
  }

  private static GRPCInferenceServiceBlockingStub stub(ManagedChannel channel) {
    return GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(30));
  }

  private static ModelInferRequest request(String model, int batch, String id) {
    return ProxyTesting.request(spec, model, batch, id);
  }
}
