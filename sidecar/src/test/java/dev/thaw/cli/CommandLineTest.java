package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CommandLineTest {
  @TempDir Path tmp;
  private final PrintStream realOut = System.out;
  private final PrintStream realErr = System.err;
  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;
  private Path model;
  private String origin;

  @BeforeEach
  void modelAndStreams() throws Exception {
    model = Files.createDirectories(tmp.resolve("model/weights"));
    byte[] shard = new byte[300_000];
    new Random(1).nextBytes(shard);
    Files.write(model.resolve("shard.bin"), shard);
    Files.writeString(tmp.resolve("model/config.json"), "{\"layers\": 2}\n");
    model = tmp.resolve("model");
    origin = tmp.resolve("origin").toUri().toString();
  }

  @AfterEach
  void restoreStreams() {
    System.setOut(realOut);
    System.setErr(realErr);
  }

  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    try {
      return Main.run(args);
    } finally {
      System.setOut(realOut);
      System.setErr(realErr);
    }
  }

  private JsonNode onlyJsonOnStdout() throws Exception {
    String text = out.toString(StandardCharsets.UTF_8).trim();
    assertThat(text).startsWith("{").endsWith("}").doesNotContain("\n");
    return JsonOut.MAPPER.readTree(text);
  }

  @Test
  void pushWithJsonPrintsExactlyOneObjectAndASecondPushUploadsNothing() throws Exception {
    assertThat(run("push", model.toString(), origin, "--name", "m:v1", "--chunk-size", "64k", "--json")).isZero();
    JsonNode first = onlyJsonOnStdout();
    assertThat(first.get("bytes_uploaded").asLong()).isEqualTo(300_000 + 14);
    assertThat(first.get("digest").asText()).startsWith("sha256:");
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("push:");

    assertThat(run("push", model.toString(), origin, "--name", "m:v2", "--chunk-size", "64k", "--json")).isZero();
    JsonNode second = onlyJsonOnStdout();
    assertThat(second.get("bytes_uploaded").asLong()).isZero();
    assertThat(second.get("bytes_hashed").asLong()).isEqualTo(300_014);
    assertThat(second.get("digest")).isEqualTo(first.get("digest"));
  }

  @Test
  void pushListsBlockHashesByDefaultAndBlockSize0WritesAVersion1ManifestBothOfWhichRead() throws Exception {
    for (String[] pushed : new String[][] {{"v2", "16k", "2"}, {"v1", "0", "1"}}) {
      assertThat(run("push", model.toString(), origin, "--name", "m:" + pushed[0], "--chunk-size", "64k",
          "--block-size", pushed[1], "--json")).isZero();
      String digest = onlyJsonOnStdout().get("digest").asText().substring("sha256:".length());
      JsonNode manifest = JsonOut.MAPPER.readTree(tmp.resolve("origin/manifests/" + digest + ".json").toFile());
      assertThat(manifest.get("version").asInt()).isEqualTo(Integer.parseInt(pushed[2]));
      assertThat(run("cat", origin + "#m:" + pushed[0], "weights/shard.bin", "--cache",
          tmp.resolve("cache-" + pushed[0]).toString())).isZero();
      assertThat(out.toByteArray()).isEqualTo(Files.readAllBytes(model.resolve("weights/shard.bin")));
    }
    assertThat(run("push", model.toString(), origin, "--name", "m:bad", "--chunk-size", "64k", "--block-size", "48k"))
        .isNotZero();
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("block size 49152 is not a power of two");
  }

  @Test
  void lsAndCatReadAPushedModel() throws Exception {
    run("push", model.toString(), origin, "--name", "m", "--chunk-size", "64k");
    assertThat(run("ls", "m", "--origin", origin, "--json")).isZero();
    JsonNode ls = onlyJsonOnStdout();
    assertThat(ls.get("bytes").asLong()).isEqualTo(300_014);
    assertThat(ls.get("entries").findValuesAsText("path")).contains("config.json", "weights/shard.bin");

    assertThat(run("cat", origin + "#m", "weights/shard.bin", "--cache", tmp.resolve("cache").toString())).isZero();
    assertThat(out.toByteArray()).isEqualTo(Files.readAllBytes(model.resolve("weights/shard.bin")));
  }

  @Test
  void catRecordsNoAccessProfileUnlessAskedSoTheNextMountPrefetchesNoOneFileProfile() throws Exception {
    run("push", model.toString(), origin, "--name", "m", "--chunk-size", "64k");
    assertThat(run("cat", origin + "#m", "config.json", "--cache", tmp.resolve("cache").toString())).isZero();
    assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo("{\"layers\": 2}\n");
    assertThat(tmp.resolve("origin/profiles")).as("no profile at the origin").doesNotExist();
    assertThat(tmp.resolve("cache")).as("nor beside the cache")
        .isDirectoryNotContaining(p -> p.getFileName().toString().contains("profile"));

    assertThat(run("cat", origin + "#m", "weights/shard.bin", "--cache", tmp.resolve("cache2").toString(),
        "--record-profile")).isZero();
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("thaw cat: saved access profile of 5 chunks to ");
    assertThat(tmp.resolve("origin/profiles")).isNotEmptyDirectory();
  }

  @Test
  void catFromAnOriginThatStallsMidChunkEndsWithAClearErrorWithinItsReadTimeout() throws Exception {
    run("push", model.toString(), origin, "--name", "m", "--chunk-size", "64k");
    Path root = tmp.resolve("origin");
    // Tags and manifests are served; every chunk's body stops halfway and the connection stays open.
    com.sun.net.httpserver.HttpServer stalled = com.sun.net.httpserver.HttpServer.create(
        new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0), 0);
    java.util.concurrent.CountDownLatch stop = new java.util.concurrent.CountDownLatch(1);
    stalled.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
    stalled.createContext("/", x -> {
      Path file = root.resolve(x.getRequestURI().getPath().substring(1));
      if (!Files.isRegularFile(file)) {
        x.sendResponseHeaders(404, -1);
        x.close();
        return;
      }
      byte[] body = Files.readAllBytes(file);
      x.sendResponseHeaders(200, body.length);
      if (x.getRequestURI().getPath().startsWith("/chunks/")) {
        x.getResponseBody().write(body, 0, body.length / 2);
        x.getResponseBody().flush();
        try {
          stop.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      } else {
        x.getResponseBody().write(body);
      }
      x.close();
    });
    stalled.start();
    try {
      String url = "http://127.0.0.1:" + stalled.getAddress().getPort() + "/";
      long start = System.nanoTime();
      assertThat(run("cat", url + "#m", "weights/shard.bin", "--cache", tmp.resolve("cache").toString(),
          "--read-timeout", "2s")).isEqualTo(1);
      java.time.Duration took = java.time.Duration.ofNanos(System.nanoTime() - start);
      assertThat(took).isLessThan(java.time.Duration.ofSeconds(15));
      assertThat(err.toString(StandardCharsets.UTF_8).trim())
          .startsWith("thaw cat: error:").contains("timed out after 2000 ms").contains(url + "chunks/");
    } finally {
      stop.countDown();
      stalled.stop(0);
    }
  }

  @Test
  void lsListsADirectoryInDirectModeWithoutAPush() throws Exception {
    assertThat(run("ls", model.toUri().toString(), "--json")).isZero();
    JsonNode ls = onlyJsonOnStdout();
    assertThat(ls.get("direct").asBoolean()).isTrue();
    assertThat(ls.get("entries").findValuesAsText("path")).contains("config.json", "weights/shard.bin");
  }

  @Test
  void gcDryRunWithJson() throws Exception {
    run("push", model.toString(), origin, "--name", "m", "--chunk-size", "64k");
    assertThat(run("gc", origin, "--grace", "1h", "--dry-run", "--json")).isZero();
    JsonNode gc = onlyJsonOnStdout();
    assertThat(gc.get("dry_run").asBoolean()).isTrue();
    assertThat(gc.get("would_delete")).isEmpty();
  }

  @Test
  void anUnknownModelIsOneClearErrorLineAndStatusOne() {
    assertThat(run("ls", "nope:v9", "--origin", origin)).isEqualTo(1);
    String e = err.toString(StandardCharsets.UTF_8).trim();
    assertThat(e).startsWith("thaw ls: error:").contains("no model nope:v9").doesNotContain("\n").doesNotContain("Exception");
    assertThat(out.toString(StandardCharsets.UTF_8)).isEmpty();
  }

  @ParameterizedTest
  @ValueSource(strings = {"push", "ls", "cat", "gc", "mount", "unmount", "profile", "run"})
  void everyCommandExplainsItsOptions(String command) {
    assertThat(run(command, "--help")).isZero();
    assertThat(out.toString(StandardCharsets.UTF_8)).contains("Usage: thaw " + command);
  }

  @ParameterizedTest
  @ValueSource(strings = {"demo", "bench store", "model generate", "placement simulate"})
  void aBenchmarkCommandWithoutTheBenchModuleIsOneLineSayingWhereItIs(String command) {
    // This module's tests run without the bench module on the class path, as the installed thaw does.
    List<String> args = new ArrayList<>(List.of(command.split(" ")));
    args.add("--help");
    assertThat(run(args.toArray(String[]::new))).isEqualTo(2);
    String e = err.toString(StandardCharsets.UTF_8).trim();
    String name = command.startsWith("placement") ? command : command.split(" ")[0];
    assertThat(e).isEqualTo("thaw " + name + ": error: not in this installation: it comes with Thaw's benchmarks (the "
        + "bench module), which the installed thaw leaves out; run it from a checkout of Thaw's repository as ./thaw "
        + name);
    assertThat(out.toString(StandardCharsets.UTF_8)).isEmpty();
  }

  @ParameterizedTest
  @ValueSource(strings = {"--concurrency=many", "--no-such-option"})
  void aBadCommandLineIsOneLineNamingTheProblemWithExitStatus2(String option) {
    assertThat(run("push", model.toString(), origin, "--name", "m:v1", option)).isEqualTo(2);
    String e = err.toString(StandardCharsets.UTF_8).trim();
    assertThat(e).startsWith("thaw push: error:").contains("see thaw push --help").doesNotContain("\n")
        .doesNotContain("Usage:");
    assertThat(out.toString(StandardCharsets.UTF_8)).isEmpty();
  }
}
