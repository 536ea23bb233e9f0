package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.ByteString;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Load on first request through the gRPC proxy, against the example server in explicit mode with nothing loaded: a
 * request for a model of the repository waits while Triton loads it, once, however many requests wait.
 */
class LoadOnFirstRequestTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static TritonGrpcProxy proxy;
  static ModelLoads loads;
  static TritonHttpProxy httpProxy;
  static ManagedChannel directChannel;
  static ManagedChannel proxyChannel;

  @BeforeAll
  static void start() throws Exception {
    spec = MlpSpec.forSize(1L << 20, 31);
    MlpGenerator.generate(repository, "mlp", spec);
    MlpGenerator.generate(repository, "other", spec);
    MlpGenerator.generate(repository, "over-http", spec);
    MlpGenerator.generate(repository, "streamed", spec);
    Path broken = Files.createDirectories(repository.resolve("broken")); // a configuration and no version
    Files.writeString(broken.resolve("config.pbtxt"), "name: \"broken\"\nplatform: \"onnxruntime_onnx\"\n");
    server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
        "--http-port=0", "--allow-metrics=false", "--model-control-mode=explicit",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).isTrue();
    loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(), ModelLoads.DEFAULT_LIMITS);
    proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
        "127.0.0.1:" + server.grpcPort(), loads);
    httpProxy = TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
        new InetSocketAddress("127.0.0.1", server.httpPort()), loads);
    directChannel = ProxyTesting.channel(server.grpcPort());
    proxyChannel = ProxyTesting.channel(proxy.port());
  }

  @AfterAll
  static void stop() throws Exception {
    proxyChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    directChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    proxy.close();
    httpProxy.close();
    loads.close();
    server.close();
  }

  @Test
  void aHundredRequestsForAnUnloadedModelWaitForOneLoadAndAreAllAnswered() throws Exception {
    assertThat(ready(direct(), "mlp")).isFalse();
    int loadsBefore = loads.loadsStarted();
    List<Future<ModelInferResponse>> answers = new ArrayList<>();
    try (ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
      for (int i = 0; i < 100; i++) {
        String id = "r" + i;
        int batch = 1 + i % 4;
        answers.add(clients.submit(() -> viaProxy().modelInfer(ProxyTesting.request(spec, "mlp", batch, id))));
      }
    }

    assertThat(loads.loadsStarted() - loadsBefore).as("loads asked of Triton").isEqualTo(1);
    for (int i = 0; i < 100; i++) {
      ModelInferResponse answer = answers.get(i).get();
      assertThat(answer.getId()).isEqualTo("r" + i);
      ByteString expected = direct().modelInfer(ProxyTesting.request(spec, "mlp", 1 + i % 4, "d"))
          .getRawOutputContents(0);
      assertThat(answer.getRawOutputContents(0)).isEqualTo(expected);
    }
  }

  @Test
  void aModelUnloadedThroughTheProxyIsLoadedAgainByItsNextRequest() {
    viaProxy().modelInfer(ProxyTesting.request(spec, "other", 1, "first"));
    viaProxy().repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("other").build());
    assertThat(ready(direct(), "other")).isFalse();
    int loadsBefore = loads.loadsStarted();

    assertThat(viaProxy().modelInfer(ProxyTesting.request(spec, "other", 2, "again")).getId()).isEqualTo("again");
    assertThat(loads.loadsStarted() - loadsBefore).isEqualTo(1);
    // a client's own load is noted too: nothing more to load
    viaProxy().repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("other").build());
    viaProxy().modelInfer(ProxyTesting.request(spec, "other", 1, "loaded"));
    assertThat(loads.loadsStarted() - loadsBefore).isEqualTo(1);
  }

  @Test
  void aModelTheRepositoryLacksGetsTritonsOwnAnswer() {
    Status expected = catchThrowableOfType(StatusRuntimeException.class,
        () -> direct().modelInfer(ProxyTesting.request(spec, "no-such-model", 1, "x"))).getStatus();
    Status actual = catchThrowableOfType(StatusRuntimeException.class,
        () -> viaProxy().modelInfer(ProxyTesting.request(spec, "no-such-model", 1, "x"))).getStatus();

    assertThat(actual.getCode()).isEqualTo(expected.getCode());
    assertThat(actual.getDescription()).isEqualTo(expected.getDescription());
  }

  @Test
  void aLoadThatFailsAnswersEveryWaitingRequestUnavailableWithTritonsReason() {
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
        () -> viaProxy().modelInfer(ProxyTesting.request(spec, "broken", 1, "x")));

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(e.getStatus().getDescription()).startsWith("failed to load model 'broken': ")
        .contains("version");
  }

  @Test
  void overHttpARequestForAnUnloadedModelWaitsForItsLoadAndAFailedLoadIs503() throws Exception {
    assertThat(ready(direct(), "over-http")).isFalse();
    HttpClient http = HttpClient.newHttpClient();
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(1)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    String body = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1," + spec.inputDim()
        + "],\"data\":[" + data + "]}]}";

    HttpResponse<String> answer = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpProxy.port()
        + "/v2/models/over-http/versions/1/infer")).POST(HttpRequest.BodyPublishers.ofString(body))
        .timeout(Duration.ofSeconds(60)).build(), HttpResponse.BodyHandlers.ofString());

    assertThat(answer.statusCode()).isEqualTo(200);
    assertThat(answer.body()).contains("\"model_name\":\"over-http\"");
    HttpResponse<String> failed = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpProxy.port()
        + "/v2/models/broken/ready")).timeout(Duration.ofSeconds(60)).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(failed.statusCode()).isEqualTo(503);
    assertThat(failed.body()).startsWith("{\"error\":\"failed to load model 'broken': ");
    // the connection's next request is served as usual
    assertThat(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpProxy.port()
        + "/v2/health/live")).timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString())
        .statusCode()).isEqualTo(200);
  }

  @Test
  void aStreamWaitsForEachMessagesModelInOrderAndAFailedLoadIsAnsweredInTheStream() throws Exception {
    assertThat(ready(direct(), "streamed")).isFalse();
    ProxyTesting.StreamAnswers into = new ProxyTesting.StreamAnswers();
    StreamObserver<ModelInferRequest> stream = ProxyTesting.StreamAnswers.open(proxyChannel, into);
    List<ModelStreamInferResponse> answers = into.answers;
    stream.onNext(ProxyTesting.request(spec, "streamed", 1, "s1"));
    stream.onNext(ProxyTesting.request(spec, "broken", 1, "s2"));
    stream.onNext(ProxyTesting.request(spec, "streamed", 2, "s3"));
    stream.onCompleted(); // while the first still waits for its model: the stream ends after all three

    into.done.get(60, TimeUnit.SECONDS);
    assertThat(answers).extracting(a -> a.getInferResponse().getId()).containsExactly("s1", "s2", "s3");
    assertThat(answers.get(0).getErrorMessage()).isEmpty();
    assertThat(answers.get(1).getErrorMessage()).startsWith("failed to load model 'broken': ");
    assertThat(answers.get(1).getInferResponse().getModelName()).isEqualTo("broken");
    assertThat(answers.get(2).getInferResponse().getRawOutputContents(0))
        .isEqualTo(direct().modelInfer(ProxyTesting.request(spec, "streamed", 2, "d")).getRawOutputContents(0));
  }

  @Test
  void theModelARequestIsAboutIsReadFromItsPath() {
    assertThat(TritonHttpProxy.modelOf("/v2/models/resnet")).isEqualTo("resnet");
    assertThat(TritonHttpProxy.modelOf("/v2/models/resnet/versions/3/infer?x=1")).isEqualTo("resnet");
    assertThat(TritonHttpProxy.modelOf("/v2/models/my%20model/ready")).isEqualTo("my model");
    assertThat(TritonHttpProxy.modelOf("/v2/models/resnet/config")).isEqualTo("resnet");
    assertThat(TritonHttpProxy.modelOf("/v2/models/llm/generate_stream")).isEqualTo("llm");
    assertThat(TritonHttpProxy.modelOf("/v2/models/stats")).as("every model's statistics").isNull();
    assertThat(TritonHttpProxy.modelOf("/v2/models/stats/stats")).isEqualTo("stats");
    assertThat(TritonHttpProxy.modelOf("/v2/repository/index")).isNull();
    assertThat(TritonHttpProxy.modelOf("/v2/health/ready")).isNull();
    assertThat(TritonHttpProxy.modelOf("/v2/models/resnet/trace/setting")).isNull();
  }

  private static boolean ready(GRPCInferenceServiceBlockingStub stub, String model) {
    return stub.modelReady(ModelReadyRequest.newBuilder().setName(model).build()).getReady();
  }

  private static GRPCInferenceServiceBlockingStub direct() {
    return GRPCInferenceServiceGrpc.newBlockingStub(directChannel).withDeadlineAfter(Duration.ofSeconds(60));
  }

  private static GRPCInferenceServiceBlockingStub viaProxy() {
    return GRPCInferenceServiceGrpc.newBlockingStub(proxyChannel).withDeadlineAfter(Duration.ofSeconds(60));
  }
}
