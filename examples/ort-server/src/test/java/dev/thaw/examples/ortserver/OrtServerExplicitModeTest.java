package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.assertMatchesReference;
import static dev.thaw.examples.ortserver.OrtServerTesting.floats;
import static dev.thaw.examples.ortserver.OrtServerTesting.json;
import static dev.thaw.examples.ortserver.OrtServerTesting.jsonInferRequest;
import static dev.thaw.examples.ortserver.OrtServerTesting.post;
import static dev.thaw.examples.ortserver.OrtServerTesting.rawRequest;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelMetadataRequest;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * Explicit model control: only {@code --load-model} models load at start, the rest on request. The tests run in
 * order, each starting from the state the previous one left.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class OrtServerExplicitModeTest {
  @TempDir
  static Path repository;
  static MlpSpec alpha;
  static MlpSpec beta;
  static OrtServer server;
  static ManagedChannel channel;
  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub grpc;

  @BeforeAll
  static void startServer() throws Exception {
    alpha = OrtServerTesting.generate(repository, "alpha", 1);
    beta = OrtServerTesting.generate(repository, "beta", 2);
    server = OrtServerTesting.start(repository, "--model-control-mode", "explicit", "--load-model", "alpha");
    channel = OrtServerTesting.channel(server);
    grpc = OrtServerTesting.stub(channel);
  }

  @AfterAll
  static void stopServer() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.close();
  }

  @Test
  @Order(1)
  void loadsOnlyTheModelsNamedAtStart() throws Exception {
    assertThat(grpc.serverReady(ServerReadyRequest.getDefaultInstance()).getReady()).isTrue();
    assertThat(modelReady("alpha")).isTrue();
    assertThat(modelReady("beta")).isFalse();
    assertMatchesReference(floats(grpc.modelInfer(rawRequest("alpha", alpha, 2)).getRawOutputContents(0)), alpha, 2);
    assertGrpcError(() -> grpc.modelInfer(rawRequest("beta", beta, 1)), Status.Code.NOT_FOUND,
        "Request for unknown model: 'beta' is not found");
    // Like Triton, a model never loaded is indexed by name only.
    assertThat(json(post(server, "/v2/repository/index", "")).toString()).isEqualTo(
        "[{\"name\":\"alpha\",\"version\":\"1\",\"state\":\"READY\",\"reason\":\"\"},{\"name\":\"beta\"}]");
  }

  @Test
  @Order(2)
  void loadsAModelOnRequest() {
    grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("beta").build());

    assertThat(modelReady("beta")).isTrue();
    assertMatchesReference(floats(grpc.modelInfer(rawRequest("beta", beta, 3)).getRawOutputContents(0)), beta, 3);
    assertThat(grpc.modelMetadata(ModelMetadataRequest.newBuilder().setName("beta").build()).getVersionsList())
        .containsExactly("1");
  }

  @Test
  @Order(3)
  void unloadsAModelOnRequest() throws Exception {
    HttpResponse<byte[]> unload = post(server, "/v2/repository/models/beta/unload", "");

    assertThat(unload.statusCode()).isEqualTo(200);
    assertThat(modelReady("beta")).isFalse();
    HttpResponse<byte[]> infer = post(server, "/v2/models/beta/infer", jsonInferRequest(beta, 1));
    assertThat(infer.statusCode()).isEqualTo(404);
    assertThat(json(infer).get("error").asText())
        .isEqualTo("Request for unknown model: 'beta' has no available versions");
    assertGrpcError(() -> grpc.modelInfer(rawRequest("beta", beta, 1)), Status.Code.NOT_FOUND,
        "Request for unknown model: 'beta' has no available versions");
    RepositoryIndexResponse.ModelIndex index = grpc.repositoryIndex(RepositoryIndexRequest.getDefaultInstance())
        .getModels(1);
    assertThat(index.getName()).isEqualTo("beta");
    assertThat(index.getState()).isEqualTo("UNAVAILABLE");
    assertThat(index.getReason()).isEqualTo("unloaded");
    assertThat(grpc.serverReady(ServerReadyRequest.getDefaultInstance()).getReady()).isTrue();
  }

  @Test
  @Order(4)
  void reloadsAServingModelAndKeepsTheOldOneWhenTheNewVersionFails() throws Exception {
    grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("alpha").build());
    assertMatchesReference(floats(grpc.modelInfer(rawRequest("alpha", alpha, 1)).getRawOutputContents(0)), alpha, 1);

    Path broken = Files.createDirectories(repository.resolve("alpha").resolve("2"));
    Files.write(broken.resolve("model.onnx"), new byte[] {1, 2, 3, 4});
    try {
      StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
          () -> grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("alpha").build()));
      assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
      assertThat(e.getStatus().getDescription()).startsWith("load failed for model 'alpha': ONNX Runtime cannot load")
          .contains(broken.resolve("model.onnx").toString());

      ModelInferResponse response = grpc.modelInfer(rawRequest("alpha", alpha, 1));
      assertThat(response.getModelVersion()).isEqualTo("1");
      assertMatchesReference(floats(response.getRawOutputContents(0)), alpha, 1);
    } finally {
      Files.delete(broken.resolve("model.onnx"));
      Files.delete(broken);
    }
  }

  @Test
  @Order(5)
  void unloadWaitsForInferencesInFlightAndNeverBreaksOne() throws Exception {
    grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("beta").build());
    AtomicBoolean stop = new AtomicBoolean();
    AtomicInteger answered = new AtomicInteger();
    AtomicInteger refused = new AtomicInteger();
    ExecutorService clients = Executors.newFixedThreadPool(4);
    List<Future<?>> running = new ArrayList<>();
    try {
      for (int c = 0; c < 4; c++) {
        running.add(clients.submit(() -> {
          while (!stop.get()) {
            try {
              ModelInferResponse r = grpc.modelInfer(rawRequest("beta", beta, 2));
              assertMatchesReference(floats(r.getRawOutputContents(0)), beta, 2);
              answered.incrementAndGet();
            } catch (StatusRuntimeException e) {
              // Between unload and load the model is gone: Triton's answer, never a broken inference.
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
              assertThat(e.getStatus().getDescription())
                  .isEqualTo("Request for unknown model: 'beta' has no available versions");
              refused.incrementAndGet();
            }
          }
          return null;
        }));
      }
      for (int cycle = 0; cycle < 3; cycle++) {
        Thread.sleep(100);
        grpc.repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("beta").build());
        Thread.sleep(50);
        grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("beta").build());
      }
      Thread.sleep(100);
    } finally {
      stop.set(true);
      clients.shutdown();
    }
    for (Future<?> f : running) {
      f.get(30, TimeUnit.SECONDS); // rethrows a client's failed assertion
    }
    assertThat(answered.get()).isPositive();
    assertThat(refused.get()).isPositive();
  }

  @Test
  @Order(6)
  void refusesToLoadAModelTheRepositoryDoesNotHave() {
    assertGrpcError(() -> grpc.repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName("gamma")
        .build()), Status.Code.INTERNAL, "failed to load 'gamma', failed to poll from model repository");
  }

  @Test
  @Order(7)
  void staysReadyWhenAStartupModelIsUnloaded() {
    grpc.repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName("alpha").build());

    assertThat(modelReady("alpha")).isFalse();
    assertThat(grpc.serverReady(ServerReadyRequest.getDefaultInstance()).getReady()).isTrue();
  }

  private static boolean modelReady(String name) {
    return grpc.modelReady(ModelReadyRequest.newBuilder().setName(name).build()).getReady();
  }

  private static void assertGrpcError(Runnable call, Status.Code code, String message) {
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, call::run);
    assertThat(e).as("expected %s: %s", code, message).isNotNull();
    assertThat(e.getStatus().getCode()).isEqualTo(code);
    assertThat(e.getStatus().getDescription()).isEqualTo(message);
  }
}
