package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw placement solve} on a state file ({@code bench} and {@code simulate} are the bench module's). */
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
}
