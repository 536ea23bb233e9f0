package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `thaw mount` as a real process; `thaw profile save` and `thaw unmount` from this one. */
class MountCommandTest {
  @TempDir Path tmp;

  private static int thaw(ByteArrayOutputStream out, String... args) {
    PrintStream realOut = System.out;
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    try {
      return Main.run(args);
    } finally {
      System.setOut(realOut);
    }
  }

  @Test
  void mountServesThePushedModelSavesItsProfileOnRequestAndUnmountsOnRequest() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model/weights"));
    byte[] shard = new byte[1_000_000];
    new Random(4).nextBytes(shard);
    Files.write(model.resolve("shard.bin"), shard);
    String origin = tmp.resolve("origin").toUri().toString();
    assertThat(thaw(new ByteArrayOutputStream(), "push", tmp.resolve("model").toString(), origin, "--name", "cli:v1",
        "--chunk-size", "64k")).isZero();

    Path mnt = tmp.resolve("mnt");
    String javaBin = ProcessHandle.current().info().command().orElse("java");
    Process mount = new ProcessBuilder(javaBin, "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(),
        "mount", "cli:v1", mnt.toString(), "--origin", origin, "--cache", tmp.resolve("cache").toString(), "--record-profile",
        "--passthrough")
        .redirectErrorStream(true).redirectOutput(tmp.resolve("mount.log").toFile()).start();
    try {
      await().atMost(Duration.ofSeconds(60)).until(() -> Files.readString(tmp.resolve("mount.log")).contains("ready"));
      assertThat(Files.readString(tmp.resolve("mount.log"))).contains("thaw mount: ready: cli:v1");
      assertThat(Files.readAllBytes(mnt.resolve("weights/shard.bin"))).isEqualTo(shard);
      // --passthrough: the file read whole gets its copy in the cache, and the next read comes from it
      Path copies = tmp.resolve("cache/chunks/wh");
      await().atMost(Duration.ofSeconds(30)).until(() -> Files.isDirectory(copies) && Files.list(copies).count() == 1);
      assertThat(Files.readAllBytes(mnt.resolve("weights/shard.bin"))).isEqualTo(shard);

      ByteArrayOutputStream saved = new ByteArrayOutputStream();
      assertThat(thaw(saved, "profile", "save", mnt.toString())).isZero();
      assertThat(saved.toString(StandardCharsets.UTF_8).trim()).endsWith(".json");
      assertThat(tmp.resolve("origin/profiles")).isNotEmptyDirectory();

      assertThat(thaw(new ByteArrayOutputStream(), "unmount", mnt.toString())).isZero();
      assertThat(mount.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      assertThat(mount.exitValue()).isZero();
      assertThat(dev.thaw.fuse.MountTable.find(mnt)).isEmpty();
      assertThat(Files.readString(tmp.resolve("mount.log"))).contains("thaw mount: unmounted");
    } finally {
      mount.destroyForcibly();
      if (dev.thaw.fuse.MountTable.find(mnt).isPresent()) {
        dev.thaw.fuse.MountTable.unmount(mnt, true);
      }
    }
  }

  @Test
  void sigtermUnmountsCleanlyAndSavesTheRecordedProfile() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    Files.writeString(model.resolve("config.json"), "{}\n");
    String origin = tmp.resolve("origin").toUri().toString();
    assertThat(thaw(new ByteArrayOutputStream(), "push", model.toString(), origin, "--name", "term:v1")).isZero();
    Path mnt = tmp.resolve("mnt");
    String javaBin = ProcessHandle.current().info().command().orElse("java");
    Process mount = new ProcessBuilder(javaBin, "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(),
        "mount", "term:v1", mnt.toString(), "--origin", origin, "--cache", tmp.resolve("cache").toString(), "--record-profile")
        .redirectErrorStream(true).redirectOutput(tmp.resolve("mount.log").toFile()).start();
    try {
      await().atMost(Duration.ofSeconds(60)).until(() -> Files.readString(tmp.resolve("mount.log")).contains("ready"));
      assertThat(Files.readString(mnt.resolve("config.json"))).isEqualTo("{}\n");
      mount.destroy(); // SIGTERM
      assertThat(mount.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      assertThat(dev.thaw.fuse.MountTable.find(mnt)).isEmpty();
      assertThat(Files.readString(tmp.resolve("mount.log"))).contains("saved access profile of 1 chunks", "thaw mount: unmounted");
    } finally {
      mount.destroyForcibly();
      if (dev.thaw.fuse.MountTable.find(mnt).isPresent()) {
        dev.thaw.fuse.MountTable.unmount(mnt, true);
      }
    }
  }

  @Test
  void mountWithJsonPrintsOneObjectOnStdoutWhenReadyAndLogsOnlyOnStderr() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model/1"));
    Files.writeString(tmp.resolve("model/config.pbtxt"), "name: \"m\"\n");
    Files.write(model.resolve("model.onnx"), new byte[200_000]);
    String origin = tmp.resolve("origin").toUri().toString();
    assertThat(thaw(new ByteArrayOutputStream(), "push", tmp.resolve("model").toString(), origin, "--name", "json:v1"))
        .isZero();
    Path mnt = tmp.resolve("mnt");
    Path stdout = tmp.resolve("mount.out");
    Path stderr = tmp.resolve("mount.err");
    String javaBin = ProcessHandle.current().info().command().orElse("java");
    Process mount = new ProcessBuilder(javaBin, "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(),
        "mount", "json:v1", mnt.toString(), "--origin", origin, "--cache", tmp.resolve("cache").toString(), "--json")
        .redirectOutput(stdout.toFile()).redirectError(stderr.toFile()).start();
    try {
      // What a script waiting for readiness does: wait for a line on stdout.
      await().atMost(Duration.ofSeconds(60)).until(() -> Files.readString(stdout).endsWith("\n"));
      var ready = JsonOut.MAPPER.readTree(Files.readString(stdout));
      assertThat(ready.get("mount_point").asText()).isEqualTo(mnt.toString());
      assertThat(ready.get("model").asText()).contains("json:v1");
      assertThat(ready.get("digest").asText()).startsWith("sha256:");
      assertThat(ready.get("entries").asInt()).as("config.pbtxt, 1/, 1/model.onnx").isEqualTo(3);
      assertThat(ready.get("bytes").asLong()).isEqualTo(200_000 + 10);
      assertThat(ready.get("ms").asLong()).isNotNegative();
      assertThat(ready.get("pid").asLong()).isEqualTo(mount.pid());
      assertThat(Files.readAllBytes(mnt.resolve("1/model.onnx"))).hasSize(200_000);

      assertThat(thaw(new ByteArrayOutputStream(), "unmount", mnt.toString())).isZero();
      assertThat(mount.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      assertThat(mount.exitValue()).isZero();
      assertThat(Files.readString(stdout)).as("exactly one object, nothing else").doesNotContain("thaw mount:")
          .matches("\\{[^\n]*\\}\n");
      assertThat(Files.readString(stderr)).contains("thaw mount: ready: ").contains("thaw mount: unmounted");
    } finally {
      mount.destroyForcibly();
      if (dev.thaw.fuse.MountTable.find(mnt).isPresent()) {
        dev.thaw.fuse.MountTable.unmount(mnt, true);
      }
    }
  }
}
