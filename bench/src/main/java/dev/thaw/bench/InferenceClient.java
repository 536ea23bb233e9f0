package dev.thaw.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;

/**
 * Sends one FP32 inference over Triton's HTTP/REST v2 protocol the way Triton's own HTTP client does by default: the
 * input as binary tensor data after the JSON header ({@code Inference-Header-Content-Length}), the output requested
 * as binary too. One client per demo, used once before the timed runs so its own start-up is not counted.
 */
final class InferenceClient {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(10)).build();

  /** Loads the HTTP client's classes and opens nothing: a request to an address that refuses, answered at once. */
  void warmUp(int refusingPort) {
    try {
      http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + refusingPort + "/v2/health/ready")).build(),
          HttpResponse.BodyHandlers.discarding());
    } catch (IOException e) {
      // expected: nothing listens there
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Infers {@code input} ({@code [batch, features]}) on {@code model} and returns the output tensor's values.
   *
   * @throws IOException with the server's error message when it answers other than 200
   */
  float[] infer(int port, String model, String inputName, String outputName, float[] input, int batch)
      throws IOException, InterruptedException {
    int features = input.length / batch;
    String header = String.format(Locale.ROOT,
        "{\"inputs\":[{\"name\":\"%s\",\"shape\":[%d,%d],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%d}}],"
            + "\"outputs\":[{\"name\":\"%s\",\"parameters\":{\"binary_data\":true}}]}",
        inputName, batch, features, input.length * 4, outputName);
    byte[] json = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer body = ByteBuffer.allocate(json.length + input.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    body.put(json);
    for (float f : input) {
      body.putFloat(f);
    }
    HttpRequest req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v2/models/" + model + "/infer"))
        .header("Content-Type", "application/octet-stream")
        .header("Inference-Header-Content-Length", String.valueOf(json.length))
        .POST(HttpRequest.BodyPublishers.ofByteArray(body.array()))
        .timeout(Duration.ofMinutes(5))
        .build();
    HttpResponse<byte[]> resp = http.send(req, HttpResponse.BodyHandlers.ofByteArray());
    byte[] b = resp.body();
    if (resp.statusCode() != 200) {
      throw new IOException("inference on " + model + " answered HTTP " + resp.statusCode() + ": "
          + new String(b, StandardCharsets.UTF_8));
    }
    int headerLength = resp.headers().firstValue("Inference-Header-Content-Length").map(Integer::parseInt)
        .orElse(b.length);
    JsonNode answer = JSON.readTree(new String(b, 0, headerLength, StandardCharsets.UTF_8));
    for (JsonNode out : answer.path("outputs")) {
      if (!out.path("name").asText().equals(outputName)) {
        continue;
      }
      if (out.has("data")) {
        float[] v = new float[out.get("data").size()];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) out.get("data").get(i).asDouble();
        }
        return v;
      }
      int size = out.path("parameters").path("binary_data_size").asInt(-1);
      if (size < 0 || headerLength + size > b.length) {
        throw new IOException("inference answer without the data of '" + outputName + "': " + answer);
      }
      ByteBuffer data = ByteBuffer.wrap(b, headerLength, size).order(ByteOrder.LITTLE_ENDIAN);
      float[] v = new float[size / 4];
      for (int i = 0; i < v.length; i++) {
        v[i] = data.getFloat();
      }
      return v;
    }
    throw new IOException("inference answer has no output '" + outputName + "': " + answer);
  }

  /** True when {@code got} equals {@code want} within a relative 1e-3 (absolute 1e-4 near zero). */
  static boolean matches(float[] got, float[] want) {
    if (got.length != want.length) {
      return false;
    }
    for (int i = 0; i < got.length; i++) {
      if (Math.abs(got[i] - want[i]) > 1e-4 + 1e-3 * Math.abs(want[i])) {
        return false;
      }
    }
    return true;
  }
}
