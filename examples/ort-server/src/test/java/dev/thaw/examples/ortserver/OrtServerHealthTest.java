package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.triton.protocol.HealthCheckRequest;
import dev.thaw.triton.protocol.HealthCheckResponse;
import dev.thaw.triton.protocol.HealthCheckResponse.ServingStatus;
import dev.thaw.triton.protocol.HealthGrpc;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The standard gRPC health service ({@code grpc.health.v1.Health}) follows the server's readiness, as Triton's does:
 * Check answers the status now, Watch every change, and a stopping server ends its watches.
 */
class OrtServerHealthTest {
  @TempDir
  Path repository;

  @Test
  void watchFollowsReadinessFromNotServingToServingAndEndsWhenTheServerStops() throws Exception {
    OrtServerTesting.generate(repository, "good", 1);
    OrtServerTesting.generate(repository, "batched", 2);
    Path config = repository.resolve("batched").resolve("config.pbtxt");
    Files.writeString(config, Files.readString(config) + "dynamic_batching { }\n");
    // "batched" is refused at load, so the server is not ready until it is unloaded (no longer wanted).
    OrtServer server = OrtServerTesting.start(repository, "--model-control-mode=explicit", "--load-model=good",
        "--load-model=batched");
    ManagedChannel channel = OrtServerTesting.channel(server);
    try {
      HealthGrpc.HealthBlockingStub check = HealthGrpc.newBlockingStub(channel)
          .withDeadlineAfter(Duration.ofSeconds(30));
      assertThat(check.check(HealthCheckRequest.getDefaultInstance()).getStatus())
          .isEqualTo(ServingStatus.NOT_SERVING);
      Watch watch = new Watch();
      HealthGrpc.newStub(channel).watch(HealthCheckRequest.getDefaultInstance(), watch);
      assertThat(watch.next()).isEqualTo(ServingStatus.NOT_SERVING);

      OrtServerTesting.stub(channel).repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder()
          .setModelName("batched").build());

      assertThat(watch.next()).isEqualTo(ServingStatus.SERVING);
      assertThat(check.check(HealthCheckRequest.getDefaultInstance()).getStatus())
          .isEqualTo(ServingStatus.SERVING);

      server.close();

      assertThat(watch.next()).isEqualTo(ServingStatus.NOT_SERVING);
      assertThat(watch.ended.await(10, TimeUnit.SECONDS)).as("the watch ends with the server").isTrue();
      assertThat(watch.error).isNull();
      assertThat(watch.statuses).isEmpty(); // each change once, no repeats
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      server.close();
    }
  }

  @Test
  void watchOfAnUnknownServiceAnswersServiceUnknown() throws Exception {
    OrtServer server = OrtServerTesting.start(repository);
    ManagedChannel channel = OrtServerTesting.channel(server);
    try {
      Watch watch = new Watch();
      HealthGrpc.newStub(channel).watch(HealthCheckRequest.newBuilder().setService("other.Service").build(), watch);

      assertThat(watch.next()).isEqualTo(ServingStatus.SERVICE_UNKNOWN);
      // The known names: the server as a whole and Triton's inference service.
      Watch inference = new Watch();
      HealthGrpc.newStub(channel).watch(HealthCheckRequest.newBuilder()
          .setService("inference.GRPCInferenceService").build(), inference);
      assertThat(inference.next()).isEqualTo(ServingStatus.SERVING);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      server.close();
    }
  }

  /** The statuses a Watch call receives, in order. */
  private static final class Watch implements StreamObserver<HealthCheckResponse> {
    final BlockingQueue<ServingStatus> statuses = new LinkedBlockingQueue<>();
    final CountDownLatch ended = new CountDownLatch(1);
    volatile Throwable error;

    ServingStatus next() throws InterruptedException {
      ServingStatus status = statuses.poll(30, TimeUnit.SECONDS);
      assertThat(status).as("a status within 30 s").isNotNull();
      return status;
    }

    @Override
    public void onNext(HealthCheckResponse response) {
      statuses.add(response.getStatus());
    }

    @Override
    public void onError(Throwable t) {
      error = t;
      ended.countDown();
    }

    @Override
    public void onCompleted() {
      ended.countDown();
    }
  }
}
