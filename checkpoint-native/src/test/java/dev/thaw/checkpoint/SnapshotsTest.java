package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Snapshots of ort-server, taken once it is warm and has answered the probe, and restored only when they match the
 * node and give the recorded answer again; otherwise the server boots from its command line and the reason is given.
 */
class SnapshotsTest {
  static Criu criu;
  @TempDir Path tmp;
  private int http;
  private Probe probe;

  @BeforeAll
  static void criuIsInstalled() throws Exception {
    criu = Criu.locate();
  }

  @Test
  void aWarmServerIsSnapshottedAndRestoredGivingTheRecordedAnswer() throws Exception {
    Path images = snapshot();
    Snapshots.Restored r = Snapshots.restore(criu, images, tmp.resolve("logs"), "test", Optional.empty(),
        Duration.ofSeconds(60));
    try {
      assertThat(r.fromSnapshot()).as(String.valueOf(r.fallbackReason())).isTrue();
      assertThat(probe.ask(Duration.ofSeconds(30))).isEqualTo(metadata(images).get("answer").asText());
    } finally {
      stop(r);
    }
  }

  @Test
  void aSnapshotFromAnotherGpuIsRefusedNamingTheFieldAndTheServerBootsInstead() throws Exception {
    Path images = snapshot();
    ObjectNode m = metadata(images);
    ((ObjectNode) m.get("key")).put(SnapshotKey.GPU_MODEL, "NVIDIA H200");
    new ObjectMapper().writeValue(images.resolve(Snapshots.METADATA).toFile(), m);
    Snapshots.Restored r = Snapshots.restore(criu, images, tmp.resolve("logs"), "test", Optional.empty(),
        Duration.ofSeconds(60));
    try {
      assertThat(r.fromSnapshot()).isFalse();
      assertThat(r.fallbackReason()).contains("does not match this node").contains("gpu_model")
          .contains("NVIDIA H200");
      Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
      assertThat(probe.ask(Duration.ofSeconds(30))).as("the booted server answers").isEqualTo(m.get("answer").asText());
    } finally {
      stop(r);
    }
  }

  @Test
  void aRestoreThatFailsLeavesNothingHalfAliveAndBootsTheServerSayingWhy() throws Exception {
    Path images = snapshot();
    try (Stream<Path> files = Files.list(images)) {
      for (Path p : files.filter(f -> f.getFileName().toString().startsWith("pages-")).toList()) {
        Files.delete(p); // the memory of the process is gone
      }
    }
    Snapshots.Restored r = Snapshots.restore(criu, images, tmp.resolve("logs"), "test", Optional.empty(),
        Duration.ofSeconds(60));
    try {
      assertThat(r.fromSnapshot()).isFalse();
      assertThat(r.fallbackReason()).contains("criu restore from " + images + " failed");
      Probe.awaitReady("http://127.0.0.1:" + http + "/v2/health/ready", Duration.ofSeconds(60));
      assertThat(probe.ask(Duration.ofSeconds(30))).isEqualTo(metadata(images).get("answer").asText());
    } finally {
      stop(r);
    }
  }

  /** Starts ort-server in its own PID namespace, snapshots it once warm (killing it), returns the images. */
  private Path snapshot() throws Exception {
    MlpSpec spec = MlpSpec.forSize(1L << 20, 3);
    MlpGenerator.generate(tmp.resolve("models"), "mlp", spec);
    int[] ports = TestServers.freePorts(2);
    http = ports[0];
    StringBuilder data = new StringBuilder();
    for (float f : spec.sampleInput(1)) {
      data.append(data.isEmpty() ? "" : ",").append(f);
    }
    probe = new Probe("http://127.0.0.1:" + http + "/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,"
        + spec.inputDim() + "],\"datatype\":\"FP32\",\"data\":[" + data + "]}]}");
    PidNamespaceProcess server = TestServers.ortServer(tmp.resolve("models"), http, ports[1], false, tmp.resolve("first"));
    try {
      Path images = tmp.resolve("images");
      Snapshots.Metadata m = Snapshots.take(criu, server.pid(), images, new Snapshots.TakeRequest(
          "http://127.0.0.1:" + http + "/v2/health/ready", probe, false, Duration.ofSeconds(60), "sha256:model", "test",
          Optional.empty(), Duration.ofSeconds(10)));
      assertThat(m.answer()).contains("\"outputs\"");
      assertThat(m.command()).contains("dev.thaw.examples.ortserver.OrtServer");
      assertThat(PidNamespaceProcess.awaitGone(server.pid(), 10_000)).isTrue();
      return images;
    } catch (IOException e) {
      throw new IOException(e.getMessage() + "; the server's log: " + Files.readString(tmp.resolve("first.err")), e);
    } finally {
      server.close();
    }
  }

  private static ObjectNode metadata(Path images) throws IOException {
    return (ObjectNode) new ObjectMapper().readTree(images.resolve(Snapshots.METADATA).toFile());
  }

  private static void stop(Snapshots.Restored r) {
    if (r.booted() != null) {
      r.booted().close();
    } else {
      Snapshots.kill(r.pid());
    }
  }

}
