package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SnapshotKeyTest {
  @TempDir Path tmp;

  @Test
  void thisNodesKeyNamesItsCpuKernelCriuModelAndCommandAndIsStable() throws Exception {
    Criu criu = Criu.locate();
    List<String> cmd = List.of("java", "-jar", "server.jar");
    SnapshotKey a = SnapshotKey.ofThisNode(criu, "sha256:abc", cmd, "0.1.0");
    SnapshotKey b = SnapshotKey.ofThisNode(criu, "sha256:abc", cmd, "0.1.0");
    assertThat(a.fields().get(SnapshotKey.CPU_FLAGS)).isNotBlank();
    assertThat(a.fields().get(SnapshotKey.KERNEL)).isEqualTo(System.getProperty("os.version"));
    assertThat(a.fields().get(SnapshotKey.CRIU)).startsWith("4.");
    assertThat(a.mismatches(b)).isEmpty();
    assertThat(a.digest()).isEqualTo(b.digest()).startsWith("sha256:");
  }

  @Test
  void aKeyFromAnotherGpuModelOrAnotherModelIsRefusedNamingTheFields() {
    SnapshotKey here = key(Map.of());
    SnapshotKey there = key(Map.of(SnapshotKey.GPU_MODEL, "NVIDIA H200", SnapshotKey.MODEL, "sha256:other"));
    assertThat(here.mismatches(there)).containsExactly(SnapshotKey.GPU_MODEL, SnapshotKey.MODEL);
    assertThat(here.digest()).isNotEqualTo(there.digest());
  }

  @Test
  void cpuFlagsCompareAsASetAndEveryFieldIsRequired() throws Exception {
    Path a = Files.writeString(tmp.resolve("a"), "model name\t: X\nflags\t\t: sse avx sha_ni\n\nmodel name\t: other\n");
    Path b = Files.writeString(tmp.resolve("b"), "model name\t: X\nflags\t\t: sha_ni sse avx\n");
    assertThat(SnapshotKey.cpuInfo(a)).isEqualTo(SnapshotKey.cpuInfo(b)).containsEntry("model name", "X");
    Map<String, String> partial = new LinkedHashMap<>(key(Map.of()).fields());
    partial.remove(SnapshotKey.CUDA);
    assertThatThrownBy(() -> new SnapshotKey(partial)).hasMessageContaining("cuda");
  }

  @Test
  void nvidiaSmiOutputGivesModelCountAndDriver() {
    SnapshotKey.Gpus g = SnapshotKey.parseNvidiaSmi("NVIDIA H100 80GB HBM3, 580.65.06\nNVIDIA H100 80GB HBM3, 580.65.06\n",
        "13.0");
    assertThat(g).isEqualTo(new SnapshotKey.Gpus("NVIDIA H100 80GB HBM3", 2, "580.65.06", "13.0"));
    assertThat(SnapshotKey.parseNvidiaSmi("", "x")).isEqualTo(SnapshotKey.Gpus.NONE);
  }

  private static SnapshotKey key(Map<String, String> changes) {
    Map<String, String> f = new LinkedHashMap<>();
    for (String name : SnapshotKey.ORDER) {
      f.put(name, "v-" + name);
    }
    f.putAll(changes);
    return new SnapshotKey(f);
  }
}
