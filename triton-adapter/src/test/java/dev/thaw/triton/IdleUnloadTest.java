package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelReadyRequest;
import io.grpc.ManagedChannel;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model nobody asks for within the idle time is unloaded, and its next request loads it again; a model's own idle
 * time applies to it alone.
 */
class IdleUnloadTest {
  @TempDir
  Path repository;

  @Test
  void anIdleModelIsUnloadedAndLoadsAgainOnItsNextRequest() throws Exception {
    MlpSpec spec = MlpSpec.forSize(256L << 10, 41);
    MlpGenerator.generate(repository, "mlp", spec);
    try (OrtServer server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
             "--http-port=0", "--allow-metrics=false", "--model-control-mode=explicit",
             "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
         ModelLoads loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(),
             ModelLoads.DEFAULT_LIMITS.withIdleUnload(Duration.ofMillis(500)));
         TritonGrpcProxy proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + server.grpcPort(), loads)) {
      ManagedChannel channel = ProxyTesting.channel(proxy.port());
      ManagedChannel direct = ProxyTesting.channel(server.grpcPort());
      try {
        var viaProxy = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(60));
        var triton = GRPCInferenceServiceGrpc.newBlockingStub(direct).withDeadlineAfter(Duration.ofSeconds(60));
        ModelReadyRequest mlpReady = ModelReadyRequest.newBuilder().setName("mlp").build();

        viaProxy.modelInfer(ProxyTesting.request(spec, "mlp", 1, "first"));
        assertThat(triton.modelReady(mlpReady).getReady()).isTrue();

        await().atMost(Duration.ofSeconds(30)).until(() -> !triton.modelReady(mlpReady).getReady());
        assertThat(loads.idleUnloads()).isEqualTo(1);

        assertThat(viaProxy.modelInfer(ProxyTesting.request(spec, "mlp", 1, "again")).getId()).isEqualTo("again");
        assertThat(loads.loadsStarted()).as("loaded twice: first, and after the unload").isEqualTo(2);
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        direct.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  @Test
  void aModelsOwnIdleTimeUnloadsItAloneAndOthersStayLoaded() throws Exception {
    MlpSpec spec = MlpSpec.forSize(256L << 10, 42);
    MlpGenerator.generate(repository, "brief", spec);
    MlpGenerator.generate(repository, "kept", spec);
    try (OrtServer server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
             "--http-port=0", "--allow-metrics=false", "--model-control-mode=explicit",
             "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
         ModelLoads loads = ModelLoads.connect("127.0.0.1:" + server.grpcPort(),
             ModelLoads.DEFAULT_LIMITS.withIdleUnload("brief", Duration.ofMillis(300)));
         TritonGrpcProxy proxy = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress("127.0.0.1", 0),
             "127.0.0.1:" + server.grpcPort(), loads)) {
      ManagedChannel channel = ProxyTesting.channel(proxy.port());
      ManagedChannel direct = ProxyTesting.channel(server.grpcPort());
      try {
        var viaProxy = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(60));
        var triton = GRPCInferenceServiceGrpc.newBlockingStub(direct).withDeadlineAfter(Duration.ofSeconds(60));
        viaProxy.modelInfer(ProxyTesting.request(spec, "brief", 1, "b"));
        viaProxy.modelInfer(ProxyTesting.request(spec, "kept", 1, "k"));

        await().atMost(Duration.ofSeconds(30)).until(() -> !triton.modelReady(ModelReadyRequest.newBuilder()
            .setName("brief").build()).getReady());
        Thread.sleep(1_000); // three of brief's idle times more
        assertThat(triton.modelReady(ModelReadyRequest.newBuilder().setName("kept").build()).getReady())
            .as("a model without an idle time of its own stays, as the default says").isTrue();
        assertThat(loads.idleUnloads()).isEqualTo(1);
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        direct.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }
}
