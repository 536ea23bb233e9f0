package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.ByteString;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The example inference server (ONNX Runtime behind Triton's protocols), warmed up and answering, is dumped and
 * restored by CRIU, and answers the same gRPC and HTTP inference with the same bytes afterwards.
 */
class OrtServerSnapshotTest {
  private static final String MODEL = "mlp";
  private static final ObjectMapper JSON = new ObjectMapper();
  static Criu criu;
  @TempDir Path tmp;

  @BeforeAll
  static void criuIsInstalled() throws Exception {
    criu = Criu.locate();
    criu.check();
  }

  @Test
  void aWarmServerRestoredFromItsSnapshotGivesTheSameAnswersOverGrpcAndHttp() throws Exception {
    MlpSpec spec = MlpSpec.forSize(2L << 20, 7);
    MlpGenerator.generate(tmp.resolve("models"), MODEL, spec);
    int[] ports = TestServers.freePorts(2);
    int http = ports[0];
    int grpc = ports[1];
    long restored = -1;
    ManagedChannel channel = Grpc.newChannelBuilderForAddress("127.0.0.1", grpc, InsecureChannelCredentials.create())
        .build();
    try (PidNamespaceProcess server = startServer(http, grpc)) {
      awaitReady(http, server);
      byte[] grpcBefore = inferGrpc(channel, spec);
      String httpBefore = inferHttp(http, spec);
      assertThat(floats(grpcBefore)).hasSize(spec.outputDim());

      Path images = tmp.resolve("images");
      criu.dump(server.pid(), images, Criu.Options.SERVER, false);
      assertThat(PidNamespaceProcess.awaitGone(server.pid(), 10_000)).isTrue();
      restored = criu.restore(images, Criu.Options.SERVER);

      assertThat(inferGrpc(channel, spec)).as("gRPC answer after restore, on the channel open before the dump")
          .isEqualTo(grpcBefore);
      assertThat(inferHttp(http, spec)).as("HTTP answer after restore").isEqualTo(httpBefore);
      float[] want = spec.reference(spec.sampleInput(1), 1);
      float[] got = floats(grpcBefore);
      for (int i = 0; i < want.length; i++) {
        assertThat(got[i]).isCloseTo(want[i], org.assertj.core.api.Assertions.within(1e-4f + 1e-3f * Math.abs(want[i])));
      }
    } finally {
      channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
      if (restored > 0) {
        long pid = restored;
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        PidNamespaceProcess.awaitGone(pid, 10_000);
      }
    }
  }

  @Test
  void withLeaveRunningTheServerKeepsAnsweringWhileTheSnapshotIsTaken() throws Exception {
    MlpSpec spec = MlpSpec.forSize(2L << 20, 8);
    MlpGenerator.generate(tmp.resolve("models"), MODEL, spec);
    int[] ports = TestServers.freePorts(2);
    int http = ports[0];
    int grpc = ports[1];
    try (PidNamespaceProcess server = startServer(http, grpc)) {
      awaitReady(http, server);
      String before = inferHttp(http, spec);
      criu.dump(server.pid(), tmp.resolve("images"), Criu.Options.SERVER, true);
      assertThat(server.isAlive()).isTrue();
      assertThat(inferHttp(http, spec)).isEqualTo(before);
      assertThat(Files.list(tmp.resolve("images")).map(p -> p.getFileName().toString()))
          .anyMatch(n -> n.startsWith("pages-")).contains("dump.log");
    }
  }

  private PidNamespaceProcess startServer(int http, int grpc) throws IOException {
    return TestServers.ortServer(tmp.resolve("models"), http, grpc, true, tmp.resolve("server"));
  }

  private void awaitReady(int http, PidNamespaceProcess server) throws Exception {
    HttpClient client = HttpClient.newHttpClient();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (System.nanoTime() < deadline) {
      try {
        HttpResponse<Void> r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + http + "/v2/health/ready"))
            .build(), HttpResponse.BodyHandlers.discarding());
        if (r.statusCode() == 200) {
          return;
        }
      } catch (IOException notYet) {
        // not listening yet
      }
      if (!server.isAlive()) {
        break;
      }
      LockSupport.parkNanos(50_000_000);
    }
    throw new AssertionError("ort-server not ready within 60 s: " + Files.readString(tmp.resolve("server.err")));
  }

  private static byte[] inferGrpc(ManagedChannel channel, MlpSpec spec) {
    ModelInferResponse r = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(30))
        .modelInfer(ModelInferRequest.newBuilder().setModelName(MODEL)
            .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName(MlpGenerator.INPUT).setDatatype("FP32")
                .addShape(1).addShape(spec.inputDim()))
            .addRawInputContents(ByteString.copyFrom(bytes(spec.sampleInput(1))))
            .build());
    return r.getRawOutputContents(0).toByteArray();
  }

  private static String inferHttp(int port, MlpSpec spec) throws Exception {
    StringBuilder data = new StringBuilder();
    for (float f : spec.sampleInput(1)) {
      data.append(data.isEmpty() ? "" : ",").append(f);
    }
    String body = "{\"inputs\":[{\"name\":\"" + MlpGenerator.INPUT + "\",\"shape\":[1," + spec.inputDim()
        + "],\"datatype\":\"FP32\",\"data\":[" + data + "]}]}";
    HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
        URI.create("http://127.0.0.1:" + port + "/v2/models/" + MODEL + "/infer"))
        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    JsonNode out = JSON.readTree(r.body()).get("outputs").get(0);
    return out.get("data").toString();
  }

  private static byte[] bytes(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b.array();
  }

  private static float[] floats(byte[] raw) {
    float[] f = new float[raw.length / 4];
    ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
    return f;
  }

}
