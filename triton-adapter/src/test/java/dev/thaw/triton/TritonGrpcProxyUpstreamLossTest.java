package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.FreePorts;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import dev.thaw.triton.protocol.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Triton dies under a call and comes back: the client gets a clean error, and the proxy serves on. */
class TritonGrpcProxyUpstreamLossTest {
  @TempDir
  Path repository;
  Process upstream;

  @AfterEach
  void stopUpstream() throws Exception {
    if (upstream != null) {
      upstream.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
  }

  @Test
  void anUpstreamKilledMidStreamFailsTheCallCleanlyAndIsServedAgainOnceBack() throws Exception {
    MlpSpec spec = MlpSpec.forSize(256L << 10, 3);
    MlpGenerator.generate(repository, "mlp", spec);
    int port = FreePorts.pick(2)[0];
    String target = "127.0.0.1:" + port;
    upstream = startServer(port);
    try (TritonGrpcProxy proxy = TritonGrpcProxy.start(new InetSocketAddress("127.0.0.1", 0), target)) {
      ManagedChannel channel = ProxyTesting.channel(proxy.port());
      try {
        awaitReady(channel);
        LinkedBlockingQueue<ModelStreamInferResponse> answers = new LinkedBlockingQueue<>();
        CompletableFuture<Status> ended = new CompletableFuture<>();
        StreamObserver<ModelInferRequest> stream = GRPCInferenceServiceGrpc.newStub(channel).modelStreamInfer(
            new StreamObserver<>() {
              @Override
              public void onNext(ModelStreamInferResponse value) {
                answers.add(value);
              }

              @Override
              public void onError(Throwable t) {
                ended.complete(Status.fromThrowable(t));
              }

              @Override
              public void onCompleted() {
                ended.complete(Status.OK);
              }
            });
        stream.onNext(ProxyTesting.request(spec, "mlp", 1, "before"));
        assertThat(answers.poll(30, TimeUnit.SECONDS).getInferResponse().getId()).isEqualTo("before");

        upstream.destroyForcibly().waitFor(10, TimeUnit.SECONDS);

        assertThat(ended.get(30, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        StatusRuntimeException down = catchThrowableOfType(StatusRuntimeException.class,
            () -> GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(10))
                .serverReady(ServerReadyRequest.getDefaultInstance()));
        assertThat(down.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(down.getStatus().getDescription()).as("the error names the upstream").contains(target);

        upstream = startServer(port);
        awaitReady(channel);
        assertThat(GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(30))
            .modelInfer(ProxyTesting.request(spec, "mlp", 2, "after")).getId()).isEqualTo("after");
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  private Process startServer(int grpcPort) throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    return new ProcessBuilder(List.of(java, "-XX:-UsePerfData", "--enable-native-access=ALL-UNNAMED", "-Xmx256m",
        "-cp", System.getProperty("java.class.path"), "dev.thaw.examples.ortserver.OrtServer",
        "--model-repository=" + repository, "--grpc-port=" + grpcPort, "--http-port=0",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()))
        .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.INHERIT).start();
  }

  /** Polls ServerReady through the proxy: what a client does while Triton starts. */
  private static void awaitReady(ManagedChannel channel) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try {
        if (GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(5))
            .serverReady(ServerReadyRequest.getDefaultInstance()).getReady()) {
          return;
        }
        assertThat(System.nanoTime()).as("ready within 60 s").isLessThan(deadline);
      } catch (StatusRuntimeException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
      }
      Thread.sleep(100);
    }
  }
}
