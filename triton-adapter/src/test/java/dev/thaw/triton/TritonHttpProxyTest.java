package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.examples.ortserver.OrtServer;
import dev.thaw.examples.ortserver.ServerOptions;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Triton's HTTP/REST protocol through the proxy against the real example server (explicit model control): every
 * answer is the server's own, byte for byte, with its status and headers.
 */
class TritonHttpProxyTest {
  /** Where requests are made for, before {@link #send} names the port. */
  static final String BASE = "http://triton";
  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
  /** Headers that say what the answer is, compared between the direct and the proxied answer. */
  static final List<String> HEADERS = List.of("content-type", "content-length", "inference-header-content-length");

  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;
  static TritonHttpProxy proxy;

  @BeforeAll
  static void start() throws Exception {
    spec = MlpSpec.forSize(1L << 20, 8);
    MlpGenerator.generate(repository, "mlp", spec);
    MlpGenerator.generate(repository, "spare", MlpSpec.forSize(256L << 10, 9));
    server = OrtServer.start(ServerOptions.parse("--model-repository=" + repository, "--grpc-port=0",
        "--http-port=0", "--model-control-mode=explicit", "--load-model=mlp",
        "--ort-native-dir=" + Path.of("target", "ort-natives").toAbsolutePath()));
    assertThat(server.awaitStartup(Duration.ofSeconds(60))).isTrue();
    proxy = TritonHttpProxy.start(new InetSocketAddress("127.0.0.1", 0),
        new InetSocketAddress("127.0.0.1", server.httpPort()));
  }

  @AfterAll
  static void stop() {
    proxy.close();
    server.close();
  }

  @Test
  void everyEndpointAnswersThroughTheProxyAsItDoesDirect() throws Exception {
    for (String path : List.of("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/mlp",
        "/v2/models/mlp/versions/1", "/v2/models/mlp/config", "/v2/models/mlp/ready", "/v2/models/spare/ready",
        "/v2/models/no-such-model", "/v2/no/such/endpoint", "/metrics")) {
      assertSameAnswer(get(path));
    }
    assertSameAnswer(post("/v2/repository/index", "", Map.of()));
    assertSameAnswer(post("/v2/repository/index", "{\"ready\":true}", Map.of()));
    assertSameAnswer(post("/v2/models/mlp/infer", jsonInferRequest(3), Map.of()));
    assertSameAnswer(post("/v2/models/no-such-model/infer", jsonInferRequest(1), Map.of()));
    assertSameAnswer(post("/v2/models/mlp/infer", "{not json", Map.of()));
    assertSameAnswer(HttpRequest.newBuilder().method("HEAD", HttpRequest.BodyPublishers.noBody())
        .uri(URI.create(BASE + "/v2/health/ready")));
  }

  @Test
  void binaryTensorsPassThroughWithTheirHeaderLength() throws Exception {
    byte[] tensor = floats(spec.sampleInput(4));
    String header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[4," + spec.inputDim()
        + "],\"parameters\":{\"binary_data_size\":" + tensor.length + "}}],"
        + "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}]}";
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.write(header.getBytes(StandardCharsets.UTF_8));
    body.write(tensor);

    HttpResponse<byte[]> answer = assertSameAnswer(HttpRequest.newBuilder()
        .POST(HttpRequest.BodyPublishers.ofByteArray(body.toByteArray()))
        .uri(URI.create(BASE + "/v2/models/mlp/infer"))
        .header("Inference-Header-Content-Length", Integer.toString(header.length()))
        .header("Content-Type", "application/octet-stream"));

    assertThat(answer.statusCode()).isEqualTo(200);
    int jsonLength = Integer.parseInt(answer.headers().firstValue("Inference-Header-Content-Length").orElseThrow());
    assertThat(answer.body()).hasSize(jsonLength + 4 * spec.outputDim() * 4);
  }

  @Test
  void aChunkedRequestBodyIsForwardedWhole() throws Exception {
    byte[] json = jsonInferRequest(2).getBytes(StandardCharsets.UTF_8);
    // a body of unknown length goes as chunks
    HttpResponse<byte[]> answer = assertSameAnswer(HttpRequest.newBuilder()
        .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(json)))
        .uri(URI.create(BASE + "/v2/models/mlp/infer")));

    assertThat(answer.statusCode()).isEqualTo(200);
  }

  @Test
  void loadsAndUnloadsThroughTheProxyReachTheServer() throws Exception {
    assertThat(send(proxy.port(), post("/v2/repository/models/spare/load", "", Map.of())).statusCode())
        .isEqualTo(200);
    assertThat(send(server.httpPort(), get("/v2/models/spare/ready")).statusCode()).isEqualTo(200);

    assertThat(send(proxy.port(), post("/v2/repository/models/spare/unload", "", Map.of())).statusCode())
        .isEqualTo(200);
    assertThat(send(server.httpPort(), get("/v2/models/spare/ready")).statusCode()).isEqualTo(400);
  }

  @Test
  void manyRequestsOnOneConnectionAreAnsweredInOrder() throws Exception {
    // HTTP/1.1 keep-alive: the client reuses its connection, and each answer is its own request's
    for (int batch = 1; batch <= 8; batch++) {
      HttpResponse<byte[]> answer = send(proxy.port(), post("/v2/models/mlp/infer",
          jsonInferRequest(batch).replaceFirst("^\\{", "{\"id\":\"req-" + batch + "\","), Map.of()));
      assertThat(new String(answer.body(), StandardCharsets.UTF_8)).contains("\"id\":\"req-" + batch + "\"");
    }
  }

  private static HttpResponse<byte[]> assertSameAnswer(HttpRequest.Builder request) throws Exception {
    HttpResponse<byte[]> expected = send(server.httpPort(), request);
    HttpResponse<byte[]> actual = send(proxy.port(), request);
    String what = request.build().method() + " " + request.build().uri().getRawPath();
    assertThat(actual.statusCode()).as(what).isEqualTo(expected.statusCode());
    assertThat(actual.body()).as(what).isEqualTo(expected.body());
    for (String header : HEADERS) {
      assertThat(actual.headers().allValues(header)).as(what + " " + header)
          .isEqualTo(expected.headers().allValues(header));
    }
    return actual;
  }

  /** Sends a request made for {@link #BASE} to the local port given. */
  static HttpResponse<byte[]> send(int port, HttpRequest.Builder request) throws Exception {
    HttpRequest r = request.copy().uri(URI.create("http://127.0.0.1:" + port + request.build().uri().getRawPath()))
        .timeout(Duration.ofSeconds(30)).build();
    return HTTP.send(r, HttpResponse.BodyHandlers.ofByteArray());
  }

  static HttpRequest.Builder get(String path) {
    return HttpRequest.newBuilder().GET().uri(URI.create(BASE + path));
  }

  static HttpRequest.Builder post(String path, String body, Map<String, String> headers) {
    HttpRequest.Builder b = HttpRequest.newBuilder().POST(HttpRequest.BodyPublishers.ofString(body))
        .uri(URI.create(BASE + path));
    headers.forEach(b::header);
    return b;
  }

  private static String jsonInferRequest(int batch) {
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(batch)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    return "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[" + batch + "," + spec.inputDim()
        + "],\"data\":[" + data + "]}]}";
  }

  private static byte[] floats(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b.array();
  }
}
