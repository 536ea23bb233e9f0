package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Triton's metrics port: per-model request counters in Prometheus text, and the switches around it. */
class OrtServerMetricsTest {
  @TempDir
  Path repository;

  @Test
  void countsEachModelsRequestsAndInferencesUnderTritonsNames() throws Exception {
    MlpSpec spec = OrtServerTesting.generate(repository, "mlp", 4);
    try (OrtServer server = OrtServerTesting.start(repository)) {
      OrtServerTesting.post(server, "/v2/models/mlp/infer", OrtServerTesting.jsonInferRequest(spec, 3));
      OrtServerTesting.post(server, "/v2/models/mlp/infer", OrtServerTesting.jsonInferRequest(spec, 2));
      OrtServerTesting.post(server, "/v2/models/mlp/infer", "{\"inputs\":[]}");

      HttpResponse<String> metrics = OrtServerTesting.HTTP.send(HttpRequest.newBuilder(
          URI.create("http://127.0.0.1:" + server.metricsPort() + "/metrics")).timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.ofString());

      assertThat(metrics.statusCode()).isEqualTo(200);
      assertThat(metrics.headers().firstValue("content-type")).hasValueSatisfying(
          t -> assertThat(t).startsWith("text/plain; version=0.0.4"));
      assertThat(metrics.body()).contains(
          "# TYPE nv_inference_request_success counter\n",
          "nv_inference_request_success{model=\"mlp\",version=\"1\"} 2\n",
          "nv_inference_request_failure{model=\"mlp\",version=\"1\"} 1\n",
          "nv_inference_count{model=\"mlp\",version=\"1\"} 5\n");
    }
  }

  @Test
  void withoutMetricsThereIsNoMetricsPortAndWithoutStrictReadinessReadyMeansLive() throws Exception {
    OrtServerTesting.generate(repository, "mlp", 4);
    Path broken = Files.createDirectories(repository.resolve("broken")); // a config and no version: fails to load
    Files.writeString(broken.resolve("config.pbtxt"), "name: \"broken\"\nplatform: \"onnxruntime_onnx\"\n");
    try (OrtServer server = OrtServerTesting.start(repository, "--allow-metrics=false", "--strict-readiness=false")) {
      assertThat(server.metricsPort()).isEqualTo(-1);
      assertThat(OrtServerTesting.get(server, "/v2/health/ready").statusCode()).as("a model failed to load")
          .isEqualTo(200);
    }
  }
}
