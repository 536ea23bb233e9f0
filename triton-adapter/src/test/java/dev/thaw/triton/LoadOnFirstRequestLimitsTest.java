package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.ModelReadyResponse;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadResponse;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The bounds on requests held during a load, against a Triton whose load of model "slow" lasts until the test lets
 * it finish (the protocol's ModelReady, RepositoryIndex, RepositoryModelLoad and ModelInfer, nothing more).
 */
class LoadOnFirstRequestLimitsTest {
  SlowLoadingTriton triton;
  Server server;
  TritonGrpcProxy proxy;
  ModelLoads loads;
  ManagedChannel channel;

  @BeforeEach
  void start() throws Exception {
    triton = new SlowLoadingTriton();
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(triton).build().start();
    loads = ModelLoads.connect("127.0.0.1:" + server.getPort(), new ModelLoads.Limits(3, Duration.ofSeconds(30)));
    proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
        "127.0.0.1:" + server.getPort(), loads);
    channel = ProxyTesting.channel(proxy.port());
  }

  @AfterEach
  void stop() throws Exception {
    triton.release.countDown();
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    proxy.close();
    loads.close();
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void requestsPastTheHoldLimitAreRefusedAndTheHeldOnesAnsweredAfterTheLoad() throws Exception {
    List<Future<ModelInferResponse>> held = new ArrayList<>();
    try (ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
      for (int i = 0; i < 3; i++) {
        String id = "held-" + i;
        held.add(clients.submit(() -> stub(60).modelInfer(request(id))));
      }
      await().atMost(Duration.ofSeconds(30)).until(() -> triton.loadsStarted.get() == 1);
      await().atMost(Duration.ofSeconds(30)).until(() -> loads.held("slow") == 3);

      StatusRuntimeException refused = catchThrowableOfType(StatusRuntimeException.class,
          () -> stub(60).modelInfer(request("one too many")));

      assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      assertThat(refused.getStatus().getDescription())
          .isEqualTo("model 'slow' is loading and 3 requests already wait for it");
      assertThat(loads.held("slow")).as("the refused request holds no place").isEqualTo(3);
      triton.release.countDown();
      for (int i = 0; i < 3; i++) {
        assertThat(held.get(i).get(30, TimeUnit.SECONDS).getId()).isEqualTo("held-" + i);
      }
    }
    assertThat(triton.loadsStarted).hasValue(1);
    assertThat(loads.held("slow")).isZero();
  }

  @Test
  void aHeldRequestPastItsDeadlineEndsDeadlineExceededAndTheLoadGoesOn() {
    StatusRuntimeException late = catchThrowableOfType(StatusRuntimeException.class,
        () -> GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofMillis(300))
            .modelInfer(request("late")));

    assertThat(late.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
    assertThat(triton.infers).as("the late request never reached Triton").hasValue(0);
    await().atMost(Duration.ofSeconds(10)).until(() -> loads.held("slow") == 0);
    triton.release.countDown();
    assertThat(stub(30).modelInfer(request("next")).getId()).isEqualTo("next");
    assertThat(triton.loadsStarted).hasValue(1);
  }

  @Test
  void heldRequestsOfALoadPastTheLoadTimeoutEndDeadlineExceededOverGrpcAnd504OverHttp() throws Exception {
    // Triton's HTTP endpoint beside the slow gRPC one: the held request never reaches it
    com.sun.net.httpserver.HttpServer http = com.sun.net.httpserver.HttpServer.create(
        new InetSocketAddress("127.0.0.1", 0), 0);
    http.createContext("/", exchange -> {
      exchange.sendResponseHeaders(200, -1);
      exchange.close();
    });
    http.start();
    try (ModelLoads shortLoads = ModelLoads.connect("127.0.0.1:" + server.getPort(),
             new ModelLoads.Limits(3, Duration.ofSeconds(1)));
         TritonGrpcProxy grpc = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + server.getPort(), shortLoads);
         TritonHttpProxy httpProxy = TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             http.getAddress(), shortLoads)) {
      ManagedChannel viaGrpc = ProxyTesting.channel(grpc.port());
      try {
        StatusRuntimeException late = catchThrowableOfType(StatusRuntimeException.class,
            () -> GRPCInferenceServiceGrpc.newBlockingStub(viaGrpc).withDeadlineAfter(Duration.ofSeconds(30))
                .modelInfer(request("grpc")));
        assertThat(late.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
        assertThat(late.getStatus().getDescription()).startsWith("model 'slow' did not load within 1 s");

        var answer = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
            java.net.URI.create("http://127.0.0.1:" + httpProxy.port() + "/v2/models/slow/ready"))
            .timeout(Duration.ofSeconds(30)).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(answer.statusCode()).isEqualTo(504);
        assertThat(answer.body()).startsWith("{\"error\":\"model 'slow' did not load within 1 s");
        assertThat(triton.infers).as("no held request reached Triton").hasValue(0);
      } finally {
        viaGrpc.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    } finally {
      http.stop(0);
    }
  }

  private GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub stub(int seconds) {
    return GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(seconds));
  }

  private static ModelInferRequest request(String id) {
    return ModelInferRequest.newBuilder().setModelName("slow").setId(id).build();
  }

  /** Triton with one model, "slow", whose load waits for {@link #release}. */
  static final class SlowLoadingTriton extends GRPCInferenceServiceGrpc.GRPCInferenceServiceImplBase {
    final CountDownLatch release = new CountDownLatch(1);
    final AtomicInteger loadsStarted = new AtomicInteger();
    final AtomicInteger infers = new AtomicInteger();
    volatile boolean loaded;

    @Override
    public void repositoryIndex(RepositoryIndexRequest request, StreamObserver<RepositoryIndexResponse> response) {
      response.onNext(RepositoryIndexResponse.newBuilder()
          .addModels(RepositoryIndexResponse.ModelIndex.newBuilder().setName("slow")).build());
      response.onCompleted();
    }

    @Override
    public void modelReady(ModelReadyRequest request, StreamObserver<ModelReadyResponse> response) {
      response.onNext(ModelReadyResponse.newBuilder().setReady(loaded && request.getName().equals("slow")).build());
      response.onCompleted();
    }

    @Override
    public void repositoryModelLoad(RepositoryModelLoadRequest request,
        StreamObserver<RepositoryModelLoadResponse> response) {
      loadsStarted.incrementAndGet();
      try {
        release.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      loaded = true;
      response.onNext(RepositoryModelLoadResponse.getDefaultInstance());
      response.onCompleted();
    }

    @Override
    public void modelInfer(ModelInferRequest request, StreamObserver<ModelInferResponse> response) {
      if (!loaded) {
        response.onError(Status.UNAVAILABLE.withDescription("Request for unknown model: 'slow' is not found")
            .asRuntimeException());
        return;
      }
      infers.incrementAndGet();
      response.onNext(ModelInferResponse.newBuilder().setModelName("slow").setId(request.getId()).build());
      response.onCompleted();
    }
  }
}
