package dev.thaw.bench.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.cli.ThawRun;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw placement bench} on small generated clusters, {@code simulate} on traces. */
class PlacementBenchCommandsTest {
  @TempDir Path tmp;
  private final ThawRun thaw = new ThawRun();

  @Test
  void benchReportsSolveTimeAndGapPerSize() throws Exception {
    assertThat(thaw.run("placement", "bench", "--sizes", "20x5,40x10", "--json")).as(thaw.err()).isZero();
    JsonNode j = new ObjectMapper().readTree(thaw.out());
    assertThat(j.fieldNames()).toIterable().containsExactly("20x5", "40x10");
    for (JsonNode size : j) {
      assertThat(size.get("solve_s").asDouble()).isPositive();
      assertThat(size.get("gap").asDouble()).isBetween(0.0, 1.0);
      assertThat(size.get("solvers")).hasSize(5);
    }
  }

  @Test
  void simulatePrintsOneObjectWhoseKeysAreExactlyThePolicyNames() throws Exception {
    Path trace = Files.writeString(tmp.resolve("trace.csv"), """
        timestamp,model,service_s
        1700000000,llama,2
        1700000030,mistral,1
        1700000031,llama,2
        1700003600,llama,2
        """);
    Path sizes = Files.writeString(tmp.resolve("sizes.csv"), """
        model,weights_gb,boot_s
        llama,14,45
        ghost,3,
        """);
    Path svg = tmp.resolve("cold.svg");
    assertThat(thaw.run("placement", "simulate", "--trace", trace.toString(), "--nodes", "4", "--svg", svg.toString(),
        "--initial-caches", "empty", "--model-sizes", sizes.toString(), "--json")).as(thaw.err()).isZero();
    assertThat(thaw.err()).contains("names models the trace never asks for: [ghost]");
    assertThat(Files.readString(svg)).startsWith("<svg").contains("startup_greedy_prestaged").contains("<rect");
    JsonNode j = new ObjectMapper().readTree(thaw.out());
    assertThat(j.fieldNames()).toIterable().containsExactly("thaw", "spread", "image_locality", "startup_greedy",
        "random", "startup_greedy_prestaged");
    for (JsonNode p : j) {
      assertThat(p.get("cold_starts").asInt()).isBetween(2, 4);
      assertThat(p.get("cold_start_seconds").asDouble()).isPositive();
      assertThat(p.get("origin_bytes").asLong()).isPositive();
      assertThat(p.get("gpu_seconds").asDouble()).isPositive();
      assertThat(p.has("p99_added_latency_s")).isTrue();
      assertThat(p.get("cold_start_floor_seconds").asDouble()).isPositive()
          .isLessThanOrEqualTo(p.get("cold_start_seconds").asDouble());
      assertThat(p.get("cold_starts_by_tier").get("origin").asInt()).as("each model's first start").isEqualTo(2);
    }
    assertThat(thaw.run("placement", "simulate", "--trace", trace.toString(), "--nodes", "4", "--initial-caches",
        "lukewarm")).isEqualTo(2);
    assertThat(thaw.err()).contains("--initial-caches is warm or empty, not lukewarm");
    assertThat(thaw.run("placement", "simulate", "--trace", "synthetic", "--requests", "300", "--days", "1", "--nodes", "5",
        "--models", "4", "--policy", "spread,thaw", "--json")).isZero();
    assertThat(thaw.run("placement", "simulate", "--trace", "synthetic", "--nodes", "5", "--policy", "best")).isEqualTo(2);
    assertThat(thaw.err()).contains("unknown policy best");
  }
}
