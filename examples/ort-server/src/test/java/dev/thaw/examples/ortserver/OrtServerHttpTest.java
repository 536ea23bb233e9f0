package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.assertMatchesReference;
import static dev.thaw.examples.ortserver.OrtServerTesting.bytes;
import static dev.thaw.examples.ortserver.OrtServerTesting.floats;
import static dev.thaw.examples.ortserver.OrtServerTesting.get;
import static dev.thaw.examples.ortserver.OrtServerTesting.json;
import static dev.thaw.examples.ortserver.OrtServerTesting.jsonInferRequest;
import static dev.thaw.examples.ortserver.OrtServerTesting.post;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The HTTP/REST v2 protocol, with Triton's binary tensor data extension, against a server in "none" mode whose
 * sessions keep their weights memory-mapped ({@code session.disable_prepacking}).
 */
class OrtServerHttpTest {
  @TempDir
  static Path repository;
  static MlpSpec spec;
  static OrtServer server;

  @BeforeAll
  static void startServer() throws Exception {
    spec = OrtServerTesting.generate(repository, "mlp", 11);
    server = OrtServerTesting.start(repository, "--ort-session-config=session.disable_prepacking=1");
  }

  @AfterAll
  static void stopServer() {
    server.close();
  }

  @Test
  void infersFromJsonTensorsBatchOneAndThree() throws Exception {
    for (int batch : new int[] {1, 3}) {
      HttpResponse<byte[]> response = post(server, "/v2/models/mlp/infer", jsonInferRequest(spec, batch));

      assertThat(response.statusCode()).isEqualTo(200);
      assertThat(response.headers().firstValue("Content-Type")).hasValue("application/json");
      JsonNode body = json(response);
      assertThat(body.get("model_name").asText()).isEqualTo("mlp");
      assertThat(body.get("model_version").asText()).isEqualTo("1");
      JsonNode output = body.get("outputs").get(0);
      assertThat(output.get("name").asText()).isEqualTo("output");
      assertThat(output.get("datatype").asText()).isEqualTo("FP32");
      assertThat(output.get("shape").toString()).isEqualTo("[" + batch + "," + spec.outputDim() + "]");
      assertMatchesReference(floats(output.get("data")), spec, batch);
    }
  }

  @Test
  void takesNestedJsonDataAndEchoesTheId() throws Exception {
    float[] input = spec.sampleInput(2);
    StringBuilder rows = new StringBuilder();
    for (int r = 0; r < 2; r++) {
      float[] row = Arrays.copyOfRange(input, r * spec.inputDim(), (r + 1) * spec.inputDim());
      rows.append(r == 0 ? "" : ",").append(Arrays.toString(row));
    }
    String request = "{\"id\":\"abc\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,"
        + spec.inputDim() + "],\"data\":[" + rows + "]}],\"outputs\":[{\"name\":\"output\"}]}";

    JsonNode body = json(post(server, "/v2/models/mlp/versions/1/infer", request));

    assertThat(body.get("id").asText()).isEqualTo("abc");
    assertMatchesReference(floats(body.get("outputs").get(0).get("data")), spec, 2);
  }

  @Test
  void takesBinaryInputsAndReturnsBinaryOutputs() throws Exception {
    byte[] tensor = bytes(spec.sampleInput(3));
    String header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[3," + spec.inputDim()
        + "],\"parameters\":{\"binary_data_size\":" + tensor.length + "}}],"
        + "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}]}";

    HttpResponse<byte[]> response = post(server, "/v2/models/mlp/infer", binaryBody(header, tensor),
        Map.of("Inference-Header-Content-Length", Integer.toString(header.length()),
            "Content-Type", "application/octet-stream"));

    assertThat(response.statusCode()).isEqualTo(200);
    assertThat(response.headers().firstValue("Content-Type")).hasValue("application/octet-stream");
    int jsonLength = Integer.parseInt(response.headers().firstValue("Inference-Header-Content-Length").orElseThrow());
    JsonNode body = OrtServerTesting.JSON.readTree(Arrays.copyOf(response.body(), jsonLength));
    JsonNode output = body.get("outputs").get(0);
    assertThat(output.has("data")).isFalse();
    int size = output.get("parameters").get("binary_data_size").asInt();
    assertThat(size).isEqualTo(3 * spec.outputDim() * 4);
    assertThat(response.body()).hasSize(jsonLength + size);
    assertMatchesReference(floats(Arrays.copyOfRange(response.body(), jsonLength, jsonLength + size)), spec, 3);
  }

  @Test
  void returnsJsonOutputsForBinaryInputsUnlessAskedOtherwise() throws Exception {
    byte[] tensor = bytes(spec.sampleInput(1));
    String header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1," + spec.inputDim()
        + "],\"parameters\":{\"binary_data_size\":" + tensor.length + "}}]}";

    HttpResponse<byte[]> response = post(server, "/v2/models/mlp/infer", binaryBody(header, tensor),
        Map.of("Inference-Header-Content-Length", Integer.toString(header.length())));

    assertThat(response.headers().firstValue("Inference-Header-Content-Length")).isEmpty();
    assertMatchesReference(floats(json(response).get("outputs").get(0).get("data")), spec, 1);
  }

  @Test
  void returnsBinaryOutputsForJsonInputsWithBinaryDataOutput() throws Exception {
    String request = jsonInferRequest(spec, 1).replaceFirst("^\\{", "{\"parameters\":{\"binary_data_output\":true},");

    HttpResponse<byte[]> response = post(server, "/v2/models/mlp/infer", request);

    int jsonLength = Integer.parseInt(response.headers().firstValue("Inference-Header-Content-Length").orElseThrow());
    assertMatchesReference(floats(Arrays.copyOfRange(response.body(), jsonLength, response.body().length)), spec, 1);
  }

  @Test
  void reportsHealthAndReadiness() throws Exception {
    assertThat(get(server, "/v2/health/live").statusCode()).isEqualTo(200);
    assertThat(get(server, "/v2/health/ready").statusCode()).isEqualTo(200);
    assertThat(get(server, "/v2/models/mlp/ready").statusCode()).isEqualTo(200);
    assertThat(get(server, "/v2/models/mlp/versions/1/ready").statusCode()).isEqualTo(200);
    HttpResponse<byte[]> notReady = get(server, "/v2/models/nope/ready");
    assertThat(notReady.statusCode()).isEqualTo(400);
    assertThat(notReady.body()).isEmpty();
  }

  @Test
  void describesServerAndModel() throws Exception {
    JsonNode server = json(get(OrtServerHttpTest.server, "/v2"));
    assertThat(server.get("name").asText()).isEqualTo("ort-server");
    assertThat(server.get("extensions").toString()).contains("binary_tensor_data");

    JsonNode model = json(get(OrtServerHttpTest.server, "/v2/models/mlp"));
    assertThat(model.toString()).isEqualTo("{\"name\":\"mlp\",\"versions\":[\"1\"],\"platform\":\"onnxruntime_onnx\","
        + "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1," + spec.inputDim() + "]}],"
        + "\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[-1," + spec.outputDim() + "]}]}");
    assertThat(json(get(OrtServerHttpTest.server, "/v2/models/mlp/versions/1"))).isEqualTo(model);
  }

  @Test
  void printsTheConfigurationAsTritonDoes() throws Exception {
    JsonNode config = json(get(server, "/v2/models/mlp/config"));

    assertThat(config.get("name").asText()).isEqualTo("mlp");
    assertThat(config.get("platform").asText()).isEqualTo("onnxruntime_onnx");
    assertThat(config.get("backend").asText()).isEqualTo("onnxruntime");
    assertThat(config.get("max_batch_size").asInt()).isEqualTo(8);
    JsonNode input = config.get("input").get(0);
    assertThat(input.get("data_type").asText()).isEqualTo("TYPE_FP32");
    assertThat(input.get("dims").toString()).isEqualTo("[" + spec.inputDim() + "]"); // numbers, not strings
    assertThat(input.get("is_shape_tensor").asBoolean(true)).isFalse(); // defaults are printed
    assertThat(config.get("version_policy").toString()).isEqualTo("{\"latest\":{\"num_versions\":1}}");
  }

  @Test
  void indexesTheRepository() throws Exception {
    assertThat(json(post(server, "/v2/repository/index", "")).toString())
        .isEqualTo("[{\"name\":\"mlp\",\"version\":\"1\",\"state\":\"READY\",\"reason\":\"\"}]");
    assertThat(json(post(server, "/v2/repository/index", "{\"ready\":true}")).size()).isEqualTo(1);
  }

  @Test
  void refusesLoadAndUnloadInNoneMode() throws Exception {
    for (String action : new String[] {"load", "unload"}) {
      HttpResponse<byte[]> response = post(server, "/v2/repository/models/mlp/" + action, "");

      assertThat(response.statusCode()).isEqualTo(503);
      assertThat(json(response).get("error").asText())
          .isEqualTo("explicit model load / unload is not allowed if polling is enabled");
    }
  }

  @Test
  void answersBadRequestsWithTritonsErrorsAndStatuses() throws Exception {
    String good = jsonInferRequest(spec, 1);
    assertError(post(server, "/v2/models/nope/infer", good), 404, "Request for unknown model: 'nope' is not found");
    assertError(get(server, "/v2/models/nope"), 404, "Request for unknown model: 'nope' is not found");
    assertError(get(server, "/v2/models/mlp/versions/2/config"), 404,
        "Request for unknown model: 'mlp' version 2 is not found");
    assertError(post(server, "/v2/models/mlp/infer", good.replace("[1,256]", "[1,128]")), 400,
        "Unable to parse 'data': Shape does not match true shape of 'data' field");
    assertError(post(server, "/v2/models/mlp/infer", good.replace("[1,256]", "[2,128]")), 400,
        "unexpected shape for input 'input' for model 'mlp'. Expected [-1,256], got [2,128]");
    assertError(post(server, "/v2/models/mlp/infer", good.replace("\"FP32\"", "\"FP64\"")), 400,
        "inference input data-type is 'FP64', model expects 'FP32' for 'mlp'");
    assertError(post(server, "/v2/models/mlp/infer", "{\"inputs\":[]}"), 400,
        "expected 1 inputs but got 0 inputs for model 'mlp'");
    assertError(post(server, "/v2/models/mlp/infer", jsonInferRequest(spec, 9)), 400,
        "inference request batch-size must be <= 8 for 'mlp'");
    HttpResponse<byte[]> malformed = post(server, "/v2/models/mlp/infer", "{\"inputs\": [");
    assertThat(malformed.statusCode()).isEqualTo(400);
    assertThat(json(malformed).get("error").asText()).startsWith("failed to parse the request JSON buffer: ");

    byte[] tensor = bytes(spec.sampleInput(1));
    String header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1," + spec.inputDim()
        + "],\"parameters\":{\"binary_data_size\":" + (tensor.length - 4) + "}}]}";
    assertError(post(server, "/v2/models/mlp/infer", binaryBody(header, Arrays.copyOf(tensor, tensor.length - 4)),
            Map.of("Inference-Header-Content-Length", Integer.toString(header.length()))), 400,
        "input byte size mismatch for input 'input' for model 'mlp'. Expected 1024, got 1020");
    assertError(post(server, "/v2/models/mlp/infer", binaryBody(header, tensor),
            Map.of("Inference-Header-Content-Length", Integer.toString(header.length()))), 400,
        "unexpected additional input data for model 'mlp'");

    assertError(get(server, "/v2/models/mlp/infer"), 405, "Method Not Allowed: use POST");
    assertError(get(server, "/v2/nowhere"), 404, "Not Found");
  }

  private static void assertError(HttpResponse<byte[]> response, int status, String message) throws Exception {
    assertThat(response.statusCode()).as(new String(response.body(), StandardCharsets.UTF_8)).isEqualTo(status);
    assertThat(response.headers().firstValue("Content-Type")).hasValue("application/json");
    assertThat(json(response).get("error").asText()).isEqualTo(message);
  }

  private static byte[] binaryBody(String header, byte[] tensor) {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.writeBytes(header.getBytes(StandardCharsets.UTF_8));
    body.writeBytes(tensor);
    return body.toByteArray();
  }
}
