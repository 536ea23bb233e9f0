package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The real {@code main} in a child JVM: its log lines, its answers, its shutdown and its exit statuses. */
class OrtServerMainTest {
  private static final Pattern HTTP_STARTED =
      Pattern.compile("ort-server: started HTTPService at 127\\.0\\.0\\.1:(\\d+)");

  @TempDir
  Path repository;

  @Test
  void logsItsStartupAnswersAndShutsDownOnSigterm() throws Exception {
    MlpSpec spec = OrtServerTesting.generate(repository, "mlp", 3);
    Process process = java("--model-repository", repository.toString(), "--grpc-port=0", "--http-port", "0", "--metrics-port=0",
        "--warmup", "--ort-native-dir=" + OrtServerTesting.NATIVE_DIR);
    List<String> lines = new CopyOnWriteArrayList<>();
    CountDownLatch ready = new CountDownLatch(1);
    Thread reader = Thread.ofPlatform().start(() -> {
      try (BufferedReader err = process.errorReader(StandardCharsets.UTF_8)) {
        for (String line; (line = err.readLine()) != null; ) {
          lines.add(line);
          if (line.startsWith("ort-server: ready in ")) {
            ready.countDown();
          }
        }
      } catch (IOException e) {
        // the process ended
      }
    });
    try {
      assertThat(ready.await(60, TimeUnit.SECONDS)).as("ready line in %s", lines).isTrue();
      List<String> server = lines.stream().filter(l -> l.startsWith("ort-server: ")).toList();
      assertThat(server.get(0)).matches("ort-server: started GRPCInferenceService at 127\\.0\\.0\\.1:\\d+");
      assertThat(server.get(1)).matches(HTTP_STARTED);
      assertThat(server.get(2)).matches("ort-server: started Metrics Service at 127\\.0\\.0\\.1:\\d+");
      assertThat(server.get(3))
          .isEqualTo("ort-server: loading model 'mlp' version 1 from " + repository.resolve("mlp"));
      assertThat(server.get(4)).matches("ort-server: model 'mlp' version 1 loaded in \\d+ ms");
      assertThat(server.get(5)).matches("ort-server: model 'mlp' warmed up in \\d+ ms");
      assertThat(server.get(6)).matches("ort-server: ready in \\d+ ms");

      Matcher http = HTTP_STARTED.matcher(server.get(1));
      assertThat(http.matches()).isTrue();
      URI base = URI.create("http://127.0.0.1:" + http.group(1));
      HttpResponse<String> health = OrtServerTesting.HTTP.send(
          HttpRequest.newBuilder(base.resolve("/v2/health/ready")).GET().build(),
          HttpResponse.BodyHandlers.ofString());
      assertThat(health.statusCode()).isEqualTo(200);
      HttpRequest request = HttpRequest.newBuilder(base.resolve("/v2/models/mlp/infer"))
          .POST(HttpRequest.BodyPublishers.ofString(OrtServerTesting.jsonInferRequest(spec, 1))).build();
      HttpResponse<byte[]> infer = OrtServerTesting.HTTP.send(request, HttpResponse.BodyHandlers.ofByteArray());
      OrtServerTesting.assertMatchesReference(
          OrtServerTesting.floats(OrtServerTesting.JSON.readTree(infer.body()).get("outputs").get(0).get("data")),
          spec, 1);

      process.toHandle().destroy(); // SIGTERM; Process.destroy() would also close the pipes being read

      assertThat(process.waitFor(30, TimeUnit.SECONDS)).as("exits after SIGTERM").isTrue();
      reader.join(5_000);
      assertThat(process.exitValue()).isEqualTo(143); // 128 + SIGTERM, after the shutdown hook ran
      assertThat(lines).containsSubsequence("ort-server: shutting down", "ort-server: stopped");
    } finally {
      process.destroyForcibly();
    }
  }

  @Test
  void logsASettingItDoesNotImplementAsOneFailedToLoadLine() throws Exception {
    OrtServerTesting.generate(repository, "stateful", 4);
    Path config = repository.resolve("stateful").resolve("config.pbtxt");
    Files.writeString(config, Files.readString(config) + "sequence_batching { max_sequence_idle_microseconds: 1 }\n");
    Process process = java("--model-repository", repository.toString(), "--grpc-port=0", "--http-port=0", "--metrics-port=0",
        "--ort-native-dir=" + OrtServerTesting.NATIVE_DIR);
    List<String> lines = new CopyOnWriteArrayList<>();
    CountDownLatch loaded = new CountDownLatch(1);
    Thread.ofPlatform().start(() -> {
      try (BufferedReader err = process.errorReader(StandardCharsets.UTF_8)) {
        for (String line; (line = err.readLine()) != null; ) {
          lines.add(line);
          if (line.startsWith("ort-server: failed to load model ") || line.startsWith("ort-server: ready in ")) {
            loaded.countDown();
          }
        }
      } catch (IOException e) {
        // the process ended
      }
    });
    try {
      assertThat(loaded.await(60, TimeUnit.SECONDS)).as("the load's outcome in %s", lines).isTrue();

      assertThat(lines).filteredOn(l -> l.startsWith("ort-server: failed to load model ")).containsExactly(
          "ort-server: failed to load model 'stateful': " + config + " asks for what ort-server does not implement:"
              + " sequence_batching (no sequence batcher: no correlation IDs, sequence controls or implicit state);"
              + " remove it, or serve the model with Triton");
    } finally {
      process.destroyForcibly();
      process.waitFor(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void exitsWithStatusTwoAndOneLineForABadFlag() throws Exception {
    Process process = java("--model-repository", repository.toString(), "--bogus=1");

    assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(process.exitValue()).isEqualTo(2);
    assertThat(stderr(process)).containsExactly("ort-server: unknown flag --bogus (see --help)");
  }

  @Test
  void exitsWithStatusOneWhenTheRepositoryDoesNotExist() throws Exception {
    Path missing = repository.resolve("missing");
    Process process = java("--model-repository", missing.toString());

    assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(process.exitValue()).isEqualTo(1);
    assertThat(stderr(process)).containsExactly(
        "ort-server: model repository " + missing + " does not exist or is not a directory");
  }

  @Test
  void printsUsageForHelp() throws Exception {
    Process process = java("--help");

    assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(process.exitValue()).isZero();
    assertThat(new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8))
        .startsWith("Usage: ort-server --model-repository=DIR");
  }

  private static Process java(String... args) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
        System.getProperty("java.class.path"), OrtServer.class.getName()));
    command.addAll(List.of(args));
    return new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.PIPE).start();
  }

  private static List<String> stderr(Process process) throws IOException {
    try (BufferedReader err = new BufferedReader(new InputStreamReader(process.getErrorStream(),
        StandardCharsets.UTF_8))) {
      return err.lines().toList();
    }
  }
}
