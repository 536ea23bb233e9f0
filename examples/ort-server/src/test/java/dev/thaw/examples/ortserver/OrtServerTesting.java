package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.ByteString;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
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
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Shared set-up of the server tests: models, servers, clients and tensor conversions. */
final class OrtServerTesting {
  static final long MODEL_BYTES = 2L << 20;
  static final ObjectMapper JSON = new ObjectMapper();
  /** Every server in the tests extracts ONNX Runtime's natives here rather than under the user's home. */
  static final Path NATIVE_DIR = Path.of("target", "ort-natives").toAbsolutePath();

  private OrtServerTesting() {}

  /** A small MLP (about 2 MiB of weights) written into {@code repository} under {@code name}. */
  static MlpSpec generate(Path repository, String name, long seed) throws IOException {
    MlpSpec spec = MlpSpec.forSize(MODEL_BYTES, seed);
    MlpGenerator.generate(repository, name, spec);
    return spec;
  }

  /** Starts a server on free ports with the given extra flags and waits for its startup loads. */
  static OrtServer start(Path repository, String... flags) throws Exception {
    List<String> args = new ArrayList<>(List.of("--model-repository=" + repository, "--grpc-port=0", "--http-port=0", "--metrics-port=0",
        "--ort-native-dir=" + NATIVE_DIR));
    args.addAll(List.of(flags));
    OrtServer server = OrtServer.start(ServerOptions.parse(args.toArray(String[]::new)));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).as("startup loads finish").isTrue();
    return server;
  }

  static ManagedChannel channel(OrtServer server) {
    return Grpc.newChannelBuilderForAddress("127.0.0.1", server.grpcPort(), InsecureChannelCredentials.create())
        .maxInboundMessageSize(64 << 20)
        .build();
  }

  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub stub(ManagedChannel channel) {
    return GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(Duration.ofSeconds(30));
  }

  /** A ModelInfer request of {@code batch} sample rows as raw contents. */
  static ModelInferRequest rawRequest(String model, MlpSpec spec, int batch) {
    return ModelInferRequest.newBuilder().setModelName(model)
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName(MlpGenerator.INPUT).setDatatype("FP32")
            .addShape(batch).addShape(spec.inputDim()))
        .addRawInputContents(ByteString.copyFrom(bytes(spec.sampleInput(batch))))
        .build();
  }

  static byte[] bytes(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b.array();
  }

  static float[] floats(ByteString bytes) {
    return floats(bytes.toByteArray());
  }

  static float[] floats(byte[] bytes) {
    float[] values = new float[bytes.length / 4];
    ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
    return values;
  }

  static float[] floats(JsonNode array) {
    float[] values = new float[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = array.get(i).floatValue();
    }
    return values;
  }

  /** ONNX Runtime's fp32 answer against the spec's double-accumulated reference: rel 1e-3, abs 1e-4. */
  static void assertMatchesReference(float[] actual, MlpSpec spec, int batch) {
    float[] expected = spec.reference(spec.sampleInput(batch), batch);
    assertThat(actual).hasSameSizeAs(expected);
    for (int i = 0; i < expected.length; i++) {
      assertThat(actual[i]).as("element %d", i).isCloseTo(expected[i], within(1e-4f + 1e-3f * Math.abs(expected[i])));
    }
  }

  // ---- HTTP ----

  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  static URI uri(OrtServer server, String path) {
    return URI.create("http://127.0.0.1:" + server.httpPort() + path);
  }

  static HttpResponse<byte[]> get(OrtServer server, String path) throws IOException, InterruptedException {
    return HTTP.send(HttpRequest.newBuilder(uri(server, path)).timeout(Duration.ofSeconds(30)).GET().build(),
        HttpResponse.BodyHandlers.ofByteArray());
  }

  static HttpResponse<byte[]> post(OrtServer server, String path, byte[] body, Map<String, String> headers)
      throws IOException, InterruptedException {
    HttpRequest.Builder b = HttpRequest.newBuilder(uri(server, path)).timeout(Duration.ofSeconds(30))
        .POST(HttpRequest.BodyPublishers.ofByteArray(body));
    headers.forEach(b::header);
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
  }

  static HttpResponse<byte[]> post(OrtServer server, String path, String json) throws IOException,
      InterruptedException {
    return post(server, path, json.getBytes(java.nio.charset.StandardCharsets.UTF_8), Map.of());
  }

  static JsonNode json(HttpResponse<byte[]> response) throws IOException {
    return JSON.readTree(response.body());
  }

  /** An HTTP infer request body with the sample input as a flat JSON "data" list. */
  static String jsonInferRequest(MlpSpec spec, int batch) {
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(batch)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    return "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[" + batch + "," + spec.inputDim()
        + "],\"data\":[" + data + "]}]}";
  }
}
