package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw placement solve} on a state file, {@code bench} on small generated clusters, {@code simulate} on traces. */
class PlacementCommandTest {
  @TempDir Path tmp;
  private final ThawRun thaw = new ThawRun();

  private static final String STATE = """
      {
        "nodes": [
          {"id": "a", "zone": "z1", "gpuModel": "A10", "gpuCount": 1, "gpuMemoryBytes": 25769803776,
           "cacheBytes": 1000000000000, "bandwidth": {"localDisk": 2e9, "peer": 1e9, "origin": 1e8},
           "cachedWeights": {"m2": 1.0}, "snapshots": ["m1"]},
          {"id": "b", "zone": "z2", "gpuModel": "A10", "gpuCount": 1, "gpuMemoryBytes": 25769803776,
           "cacheBytes": 1000000000000, "bandwidth": {"localDisk": 2e9, "peer": 1e9, "origin": 1e8}}
        ],
        "models": [
          {"id": "m1", "weightBytes": 1000000000, "snapshotBytes": {"A10": 2000000000}, "gpusPerReplica": 1,
           "gpuMemoryPerReplica": 1, "bootSeconds": 90, "demand": {"replicas": 0, "requestRate": 1.9, "perReplicaCapacity": 10}},
          {"id": "m2", "weightBytes": 1000000000, "gpusPerReplica": 1, "gpuMemoryPerReplica": 1, "bootSeconds": 9.5,
           "demand": {"replicas": 0, "requestRate": 2.0, "perReplicaCapacity": 10}}
        ],
        "running": {"m2": {"b": 1}}
      }
      """;

  @Test
  void solvePrintsThePlanItsStartsAndMovesAsOneJsonObject() throws Exception {
    Path state = Files.writeString(tmp.resolve("state.json"), STATE);
    assertThat(thaw.run("placement", "solve", "--input", state.toString(), "--json")).as(thaw.err()).isZero();
    JsonNode j = new ObjectMapper().readTree(thaw.out());
    assertThat(j.get("policy").asText()).isEqualTo("thaw");
    assertThat(j.get("replicas").get("m1").get("a").asInt()).as("m1 restores from its snapshot on a").isEqualTo(1);
    assertThat(j.get("replicas").get("m2").get("b").asInt()).as("m2 keeps running on b").isEqualTo(1);
    assertThat(j.get("starts").get(0).get("tier").asText()).isEqualTo("snapshot");
    assertThat(j.get("removed")).isEmpty();
    assertThat(j.get("gap").asDouble()).isLessThan(1e-6);
    assertThat(thaw.err()).contains("placement: thaw plan");
  }

  @Test
  void aBaselineCanBeAskedForAndABadStateFileIsOneClearLine() throws Exception {
    Path state = Files.writeString(tmp.resolve("state.json"), STATE);
    assertThat(thaw.run("placement", "solve", "--input", state.toString(), "--policy", "spread", "--json")).isZero();
    assertThat(new ObjectMapper().readTree(thaw.out()).get("policy").asText()).isEqualTo("spread");
    Path bad = Files.writeString(tmp.resolve("bad.json"), "{\"nodes\": [{\"id\": \"a\"}], \"models\": []}");
    assertThat(thaw.run("placement", "solve", "--input", bad.toString())).isEqualTo(1);
    assertThat(thaw.err()).contains("thaw placement solve: error: cannot read the cluster state")
        .contains("node a needs a zone");
  }

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
