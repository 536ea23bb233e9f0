package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What Thaw is told as models load and unload through the proxies (what serves their bytes and records their cold
 * starts listens): a load is announced before Triton is asked, whether a request or a client asked for it; the first
 * inference after it completes the cold start, with Triton's share and Thaw's; unloads are announced.
 */
class ModelEventsTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static ModelLoads loads;
  static TritonGrpcProxy proxy;
  static TritonHttpProxy httpProxy;
  static ManagedChannel proxyChannel;
  static ManagedChannel directChannel;
  static final Events events = new Events();

  /** Every event in order, as "loading mlp (ready: false)"; cold starts as they completed. */
  static final class Events implements ModelLoads.Listener {
    final List<String> said = new CopyOnWriteArrayList<>();
    final List<ModelLoads.ColdStart> servedFromZero = new CopyOnWriteArrayList<>();

    @Override
    public void loading(ModelLoads.ColdStart coldStart) {
      String model = coldStart.model();
      said.add("loading " + model + " (ready: " + ready(model) + ")"); // Triton has not been asked yet
    }

    @Override
    public void loaded(String model, ModelLoads.ColdStart coldStart) {
      said.add("loaded " + model);
    }

    @Override
    public void loadFailed(String model, String reason) {
      said.add("failed " + model);
    }

    @Override
    public void unloaded(String model) {
      said.add("unloaded " + model);
    }

    @Override
    public void servedFromZero(ModelLoads.ColdStart coldStart) {
      said.add("served " + coldStart.model());
      servedFromZero.add(coldStart);
    }

    List<String> about(String model) {
      return said.stream().filter(s -> s.split(" ")[1].equals(model)).toList();
    }
  }

  @BeforeAll
  static void start() throws Exception {
    spec = MlpSpec.forSize(512L << 10, 51);
    for (String model : List.of("by-request", "by-client", "over-http", "streamed")) {
      MlpGenerator.generate(repository, model, spec);
    }
    Path broken = Files.createDirectories(repository.resolve("broken"));
    Files.writeString(broken.resolve("config.pbtxt"), "name: \"broken\"\nplatform: \"onnxruntime_onnx\"\n");
    server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
        "--http-port=0", "--allow-metrics=false", "--model-control-mode=explicit",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).isTrue();
    directChannel = ProxyTesting.channel(server.grpcPort());
    loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(), ModelLoads.DEFAULT_LIMITS, events);
    proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
        "127.0.0.1:" + server.grpcPort(), loads);
    httpProxy = TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
        new InetSocketAddress("127.0.0.1", server.httpPort()), loads);
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

  static boolean ready(String model) {
    return GRPCInferenceServiceGrpc.newBlockingStub(directChannel).withDeadlineAfter(Duration.ofSeconds(30))
        .modelReady(ModelReadyRequest.newBuilder().setName(model).build()).getReady();
  }

  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub viaProxy() {
    return GRPCInferenceServiceGrpc.newBlockingStub(proxyChannel).withDeadlineAfter(Duration.ofSeconds(60));
  }

  @Test
  void aRequestForAnUnloadedModelIsAColdStartAnnouncedBeforeTritonLoadsAndCompleteAtItsAnswer() {
    long before = System.nanoTime();
    viaProxy().modelInfer(ProxyTesting.request(spec, "by-request", 1, "one"));
    viaProxy().modelInfer(ProxyTesting.request(spec, "by-request", 1, "two"));
    long after = System.nanoTime();

    assertThat(events.about("by-request")).containsExactly("loading by-request (ready: false)", "loaded by-request",
        "served by-request");
    ModelLoads.ColdStart c = events.servedFromZero.stream().filter(s -> s.model().equals("by-request")).findFirst()
        .orElseThrow();
    assertThat(List.of(before, c.askedNanos(), c.loadCalledNanos(), c.loadedNanos(), c.inferenceSentNanos(),
        c.inferenceAnsweredNanos(), after)).as("the times in the order things happened").isSorted();
    assertThat(c.inTriton()).isPositive().isLessThanOrEqualTo(c.total());
    assertThat(c.inThaw()).isEqualTo(c.total().minus(c.inTriton())).isGreaterThanOrEqualTo(Duration.ZERO);
  }

  @Test
  void aClientsOwnLoadIsAnnouncedBeforeTritonSeesItAndItsUnloadAfter() {
    viaProxy().repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("by-client").build());
    viaProxy().modelInfer(ProxyTesting.request(spec, "by-client", 1, "one"));
    viaProxy().repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("by-client").build());

    assertThat(events.about("by-client")).containsExactly("loading by-client (ready: false)", "loaded by-client",
        "served by-client", "unloaded by-client");
  }

  @Test
  void overHttpAClientsLoadAndTheFirstInferenceAreNotedAndAFailedLoadToo() throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    assertThat(post(http, "/v2/repository/models/over-http/load", "").statusCode()).isEqualTo(200);
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(1)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    assertThat(post(http, "/v2/models/over-http/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
        + "\"shape\":[1," + spec.inputDim() + "],\"data\":[" + data + "]}]}").statusCode()).isEqualTo(200);
    assertThat(post(http, "/v2/repository/models/broken/load", "").statusCode()).isEqualTo(400);
    assertThat(post(http, "/v2/repository/models/over-http/unload", "").statusCode()).isEqualTo(200);

    assertThat(events.about("over-http")).containsExactly("loading over-http (ready: false)", "loaded over-http",
        "served over-http", "unloaded over-http");
    assertThat(events.about("broken")).containsExactly("loading broken (ready: false)", "failed broken");
  }

  @Test
  void aStreamsFirstAnswerForTheModelCompletesItsColdStart() throws Exception {
    ProxyTesting.StreamAnswers into = new ProxyTesting.StreamAnswers();
    StreamObserver<ModelInferRequest> stream = ProxyTesting.StreamAnswers.open(proxyChannel, into);
    stream.onNext(ProxyTesting.request(spec, "streamed", 1, "s1"));
    stream.onNext(ProxyTesting.request(spec, "streamed", 1, "s2"));
    stream.onCompleted();
    into.done.get(60, TimeUnit.SECONDS);

    assertThat(into.answers).hasSize(2);
    await().atMost(Duration.ofSeconds(10)).until(() -> events.about("streamed").size() == 3);
    assertThat(events.about("streamed")).containsExactly("loading streamed (ready: false)", "loaded streamed",
        "served streamed");
  }

  @Test
  void aListenerThatFailsNeverFailsTheLoad() throws Exception {
    MlpGenerator.generate(repository, "listener-fails", spec);
    try (ModelLoads failing = ModelLoads.connect("127.0.0.1:" + server.grpcPort(), ModelLoads.DEFAULT_LIMITS,
             new ModelLoads.Listener() {
               @Override
               public void loading(ModelLoads.ColdStart coldStart) {
                 throw new IllegalStateException("the listener's own trouble");
               }
             });
         TritonGrpcProxy own = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + server.grpcPort(), failing)) {
      ManagedChannel channel = ProxyTesting.channel(own.port());
      try {
        assertThat(GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(60))
            .modelInfer(ProxyTesting.request(spec, "listener-fails", 1, "x")).getId()).isEqualTo("x");
      } catch (StatusRuntimeException e) {
        throw new AssertionError("the load failed with the listener", e);
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  private static HttpResponse<String> post(HttpClient http, String path, String body) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpProxy.port() + path))
        .POST(HttpRequest.BodyPublishers.ofString(body)).timeout(Duration.ofSeconds(60)).build(),
        HttpResponse.BodyHandlers.ofString());
  }
}
