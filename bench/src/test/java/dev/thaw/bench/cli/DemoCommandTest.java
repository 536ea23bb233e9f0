package dev.thaw.bench.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.cli.Main;
import dev.thaw.cli.ThawRun;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw demo} end to end on a small model: a real S3Proxy origin behind the throttle, real downloaders, real
 * {@code thaw mount} processes and real ort-server processes, real CRIU snapshots of the server on local disk and on
 * a Thaw mount, each run answered correctly (the demo checks every answer against the plain-Java reference and fails
 * otherwise). Speed is not asserted here; docs/benchmarks.md has it.
 */
class DemoCommandTest {
  @TempDir Path work;

  @Test
  void timesEveryPathToACorrectFirstInferenceAndWritesTheTimeline() throws Exception {
    ThawRun thaw = new ThawRun();
    int code = thaw.run("demo", "--size", "6m", "--work", work.toString(), "--json");
    String log = thaw.err();
    assertThat(code).as(log).isZero();
    String stdout = thaw.out().trim();
    assertThat(stdout).as("--json prints one object only").startsWith("{").endsWith("}").doesNotContain("\n");
    JsonNode j = new ObjectMapper().readTree(stdout);

    long modelBytes = j.get("model_bytes").asLong();
    assertThat(modelBytes).as("about the asked 6 MiB").isBetween(4L << 20, 8L << 20);
    for (String key : new String[] {"download_then_boot_s", "lazy_s", "lazy_profile_s", "lazy_cli_s",
        "lazy_profile_cli_s", "local_disk_boot_s",
        "restore_origin_s", "restore_local_s", "restore_origin_mount_s", "restore_local_mount_s",
        "best_parallel_download_s"}) {
      assertThat(j.get(key).asDouble()).as(key).isPositive();
    }
    JsonNode fetched = j.get("bytes_fetched_at_first_inference");
    assertThat(fetched.get("download_then_boot").asLong()).isGreaterThanOrEqualTo(modelBytes);
    assertThat(fetched.get("lazy").asLong()).isPositive();
    assertThat(fetched.get("lazy_cli").asLong()).isPositive();
    assertThat(fetched.get("local_disk_boot").asLong()).isZero();
    long image = j.get("snapshot").get("image_bytes").asLong();
    assertThat(image).as("the snapshot holds the server's memory").isGreaterThan(modelBytes);
    assertThat(fetched.get("restore_origin").asLong()).as("a new node fetches every (sealed) image byte")
        .isGreaterThanOrEqualTo(image);
    assertThat(fetched.get("restore_local").asLong()).isZero();
    long onMountImage = j.get("snapshot").get("on_mount").get("image_bytes").asLong();
    assertThat(onMountImage).as("the server on a mount holds its repacked weights too").isGreaterThan(modelBytes);
    assertThat(fetched.get("restore_origin_mount").asLong()).as("a new node fetches every (sealed) image byte")
        .isGreaterThanOrEqualTo(onMountImage);
    try (Stream<Path> files = Files.walk(work.resolve("snapshot-mount"))) {
      Path external = files.filter(f -> f.getFileName().toString().equals("external-mounts")).findFirst().orElseThrow();
      assertThat(Files.readString(external)).as("the snapshotted server read its model through the Thaw mount")
          .contains(work.resolve("snapshot-mnt").toString()).contains("thaw:demo/mlp:v1@sha256:");
    }
    assertThat(log).contains("first inference after").contains("best parallel download alone");

    JsonNode timeline = new ObjectMapper().readTree(work.resolve("timeline.json").toFile());
    assertThat(timeline.get("runs")).hasSize(10);
    for (JsonNode run : timeline.get("runs")) {
      JsonNode ev = run.get("events_ms");
      if (run.get("run").asText().startsWith("restore_")) {
        // no boot: the restored server was ready when it was dumped
        assertThat(ev.get("restored_and_verified").asDouble()).as(run.get("run").asText())
            .isLessThanOrEqualTo(ev.get("first_inference").asDouble());
        continue;
      }
      assertThat(ev.get("model_loaded").asDouble()).as(run.get("run").asText())
          .isLessThanOrEqualTo(ev.get("ready").asDouble());
      assertThat(ev.get("ready").asDouble()).isLessThanOrEqualTo(ev.get("first_inference").asDouble());
    }
    assertThat(timeline.get("runs").get(6).get("events_ms").has("images_fetched")).isTrue();
    JsonNode onMountOrigin = timeline.get("runs").get(8);
    assertThat(onMountOrigin.get("run").asText()).isEqualTo("restore_origin_mount");
    assertThat(onMountOrigin.get("how").asText()).contains("mounting the model itself");
    assertThat(onMountOrigin.get("cpu_s_at_first_inference").get("thaw_mount").asDouble())
        .as("the restore's own mount did the model's reads").isPositive();
    JsonNode onMountLocal = timeline.get("runs").get(9);
    assertThat(onMountLocal.get("run").asText()).isEqualTo("restore_local_mount");
    assertThat(onMountLocal.get("how").asText()).startsWith("thaw mount of the model");
    assertThat(onMountLocal.get("events_ms").get("mounted").asDouble()).as("the mount comes first")
        .isLessThan(onMountLocal.get("events_ms").get("restored_and_verified").asDouble());
    for (int lazy : new int[] {1, 2, 3, 4}) {
      JsonNode run = timeline.get("runs").get(lazy);
      assertThat(run.get("run").asText()).startsWith("lazy");
      assertThat(run.get("events_ms").has("mounted")).as(run.get("run").asText()).isTrue();
      assertThat(run.get("events_ms").has("first_byte")).as(run.get("run").asText()).isTrue();
    }
    assertThat(timeline.get("runs").get(3).get("how").asText()).as("the deployment's way: a running sidecar")
        .startsWith("POST /v1/mounts");
    String html = Files.readString(work.resolve("timeline.html"));
    assertThat(html).contains("<svg").contains("lazy mount + profile via sidecar, cold cache")
        .contains("restore, images from the origin").contains("restore on a Thaw mount, images from the origin");
    assertThat(Files.readString(Path.of("/proc/mounts"))).as("no mount left behind").doesNotContain(work.toString());
  }

  @Test
  void onAMachineWithoutCriuTheDemoInstallsOneBeforeAnyWork() throws Exception {
    // No CRIU here: a mount namespace of its own hides /usr/local/sbin (the only CRIU on this PATH) under an empty
    // tmpfs. install-criu.sh then takes its cached build, which this test provides as a copy of the real one.
    Path cache = Files.createDirectories(work.resolve("criu-cache"));
    Files.copy(dev.thaw.checkpoint.Criu.locate().binary(), cache.resolve("criu"));
    String javaBin = ProcessHandle.current().info().command().orElse("java");
    ProcessBuilder pb = new ProcessBuilder("unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", "mount -t tmpfs thaw-no-criu /usr/local/sbin && exec \"$@\"", "sh",
        javaBin, "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(),
        "demo", "--size", "6m", "--work", work.resolve("demo").toString());
    pb.environment().remove("THAW_CRIU");
    pb.environment().put("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    pb.environment().put("THAW_CRIU_CACHE", cache.toString());
    Process demo = pb.redirectErrorStream(true).start();
    java.util.List<String> lines = new java.util.ArrayList<>();
    java.util.List<String> all = new java.util.ArrayList<>(); // what a failure shows: the installer's cause included
    try (var out = new java.io.BufferedReader(new java.io.InputStreamReader(demo.getInputStream(), StandardCharsets.UTF_8))) {
      // Read until the demo's first line of its own work, then stop it there.
      for (String line; (line = out.readLine()) != null; ) {
        all.add(line);
        if (line.startsWith("thaw demo:") || (line.startsWith("install-criu:") && !line.startsWith("install-criu:   "))
            || line.startsWith("demo:")) {
          lines.add(line);
        }
        if (line.startsWith("demo:")) {
          break;
        }
      }
    } finally {
      demo.destroyForcibly();
      demo.waitFor();
    }
    String output = String.join("\n", all);
    assertThat(lines).as(output).hasSizeGreaterThan(2);
    assertThat(lines.get(0)).as("the first thing the demo does: " + output)
        .startsWith("thaw demo: no working CRIU here; installing one with ").endsWith("scripts/install-criu.sh");
    assertThat(lines.subList(1, lines.size() - 1)).as(output)
        .anyMatch(l -> l.startsWith("install-criu: installed the cached CRIU"));
    assertThat(lines.getLast()).as("then the demo's work: " + output).startsWith("demo:");
  }
}
