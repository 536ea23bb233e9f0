package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.testkit.FreePorts;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ServerLiveRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Thaw's ports open before Triton's: a readiness probe finds Triton still starting, and a request for a model that
 * comes then waits for Triton to be up and the model loaded, instead of failing on the connection refused before.
 */
class TritonStartingTest {
  @TempDir
  Path repository;

  @Test
  void aRequestThatComesWhileTritonIsStillStartingWaitsForItAndIsServed() throws Exception {
    MlpSpec spec = MlpSpec.forSize(256L << 10, 71);
    MlpGenerator.generate(repository, "mlp", spec);
    int grpc = FreePorts.pick(1)[0];
    try (ModelLoads loads = ModelLoads.connect("127.0.0.1:" + grpc, ModelLoads.DEFAULT_LIMITS);
         TritonGrpcProxy proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + grpc, loads)) {
      ManagedChannel channel = ProxyTesting.channel(proxy.port());
      try {
        var viaProxy = GRPCInferenceServiceGrpc.newBlockingStub(channel);
        try {
          viaProxy.withDeadlineAfter(Duration.ofSeconds(5)).serverLive(ServerLiveRequest.getDefaultInstance());
          throw new AssertionError("Triton is not started yet: its liveness cannot be answered");
        } catch (StatusRuntimeException expected) {
          // the probe's answer while Triton starts; Thaw has tried to reach it and failed meanwhile
        }
        Thread.sleep(500);
        CompletableFuture<String> answer = CompletableFuture.supplyAsync(() -> viaProxy
            .withDeadlineAfter(Duration.ofSeconds(60)).modelInfer(ProxyTesting.request(spec, "mlp", 1, "early"))
            .getId());
        Thread.sleep(500); // the request waits
        try (OrtServer triton = OrtServer.start(ServerOptions.parse("--model-repository=" + repository,
            "--grpc-address=127.0.0.1", "--grpc-port=" + grpc, "--http-port=0", "--allow-metrics=false",
            "--model-control-mode=explicit", "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()))) {
          assertThat(answer.get(60, TimeUnit.SECONDS)).isEqualTo("early");
          assertThat(loads.loadsStarted()).isEqualTo(1);
        }
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }
}
