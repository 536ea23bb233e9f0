package dev.thaw.sidecar.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.sidecar.MountService;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** A member's registration is the JSON in etcd that other members (and older ones) read: its fields stay put. */
class RegistrationTest {
  private static MountService.MountInfo mount(String id, String source, String digest, double fill) {
    return new MountService.MountInfo(id, source, source + " at file:///o/", digest, "/m/" + id, true, "now", 1, 100,
        (long) (fill * 100), fill, new MountService.FetchedBytes(0, 0), 0, 0, 0, "none", "c" + id);
  }

  @Test
  void itIsWrittenAsTheSnakeCaseJsonMembersRead() throws Exception {
    ClusterConfig config = new ClusterConfig();
    config.setNodeId("n1");
    config.setZone("z1");
    Registration r = Registration.of(config, new Registration.Gpus("L4", 2, 24L << 30), 1L << 30, "http://n1:7071",
        List.of(mount("m1", "a:v1", "sha256:aa", 0.5), mount("m2", "a:v1", "sha256:aa", 1.0),
            mount("m3", "b:v1", "sha256:bb", 1.0)),
        Map.of("c:v1", "sha256:cc"), List.of(new Registration.SnapshotHeld("snap", "k1")));
    assertThat(r.toJson()).isEqualTo("{\"node\":\"n1\",\"zone\":\"z1\",\"gpu_model\":\"L4\",\"gpu_count\":2,"
        + "\"gpu_memory_bytes\":25769803776,\"cache_bytes\":1073741824,\"peer_url\":\"http://n1:7071\","
        + "\"bandwidth\":{\"local_disk\":2.0E9,\"peer\":1.25E9,\"origin\":2.0E8},"
        + "\"cached\":{\"a:v1\":1.0,\"b:v1\":1.0,\"c:v1\":1.0},"
        + "\"held\":{\"sha256:aa\":1.0,\"sha256:bb\":1.0,\"sha256:cc\":1.0},"
        + "\"fetching\":{\"sha256:aa\":true},\"running\":{\"a:v1\":2,\"b:v1\":1},"
        + "\"snapshots\":[{\"name\":\"snap\",\"key\":\"k1\"}]}");
    assertThat(Registration.fromJson(r.toJson())).isEqualTo(r);
    assertThat(r.peer().holds("sha256:aa")).isEqualTo(1.0);
    assertThat(r.peer().fetching()).containsExactly("sha256:aa");
  }

  @Test
  void whatARegistrationLeavesOutReadsAsTheDefaults() throws Exception {
    Registration ghost = Registration.fromJson("{\"node\": \"ghost\", \"peer_url\": \"http://127.0.0.1:1\","
        + " \"held\": {\"sha256:aa\": 1.0}, \"fetching\": {\"sha256:aa\": true, \"sha256:bb\": false}}");
    assertThat(ghost.node()).isEqualTo("ghost");
    assertThat(ghost.zone()).isEqualTo("default");
    assertThat(ghost.gpus()).isEqualTo(new Registration.Gpus("none", 0, 0));
    assertThat(ghost.bandwidth()).isEqualTo(new Registration.Bandwidth(2e9, 1.25e9, 0.2e9));
    assertThat(ghost.fetching()).isEqualTo(Set.of("sha256:aa"));
    assertThat(ghost.running()).isEmpty();
    assertThat(Registration.fromJson("{\"node\": \"x\"}").peerUrl()).as("no peer endpoint").isNull();
  }
}
