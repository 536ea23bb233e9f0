package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.fuse.MountTable;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw triton -- tritonserver ...} with a Triton model repository in an S3 bucket (S3Proxy), read where it is,
 * and the example server standing in for {@code tritonserver} (Triton's flags and protocols).
 */
class TritonCommandTest {
  @TempDir
  static Path tmp;
  static S3ProxyServer s3;
  static Path tritonserver;
  static MlpSpec spec;

  @BeforeAll
  static void start() throws Exception {
    s3 = S3ProxyServer.start(tmp.resolve("s3"));
    Path repository = Files.createDirectories(tmp.resolve("repository"));
    spec = MlpSpec.forSize(512L << 10, 21);
    MlpGenerator.generate(repository, "mlp", spec);
    MlpGenerator.generate(repository, "small", MlpSpec.forSize(128L << 10, 22));
    TritonFixtures.upload(s3, repository, "triton/models");
    tritonserver = TritonFixtures.tritonserver(tmp);
  }

  @AfterAll
  static void stop() throws IOException {
    s3.close();
  }

  @Test
  void tritonReadsAnS3RepositoryThroughAMountAndAnswersOnItsPublicPorts() throws Exception {
    int[] ports = FreePorts.pick(3);
    Path mountRoot = tmp.resolve("mounts");
    Path log = tmp.resolve("thaw-triton.log");
    Process thaw = thaw(log, "--cache", tmp.resolve("cache").toString(), "--mount-root", mountRoot.toString(), "--",
        tritonserver.toString(), "--model-repository=s3://127.0.0.1:" + s3.port() + "/" + S3ProxyServer.BUCKET
            + "/triton/models", "--http-port=" + ports[0], "--grpc-port=" + ports[1], "--metrics-port=" + ports[2],
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1");
    try {
      await().atMost(Duration.ofSeconds(90)).ignoreExceptions()
          .until(() -> get(ports[0], "/v2/health/ready").statusCode() == 200);
      Path mounted = mountRoot.resolve("repository-0");
      assertThat(MountTable.find(mounted)).as("the repository is a Thaw mount").isPresent();
      assertThat(Files.readString(log)).contains("thaw triton: s3://127.0.0.1:" + s3.port()
          + "/thaw-bench/triton/models mounted at " + mounted, "recording its access profile");

      // Triton's default mode, and nothing loaded at start: the first request waits while Triton loads the model
      HttpResponse<String> answer = post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2));
      assertThat(answer.statusCode()).isEqualTo(200);
      assertThat(answer.body()).contains("\"name\":\"output\"");

      thaw.destroy(); // SIGTERM: passed on to Triton, then the mount ends

      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(thaw.exitValue()).as("Triton's exit status after SIGTERM (a JVM's: 128 + 15)").isEqualTo(143);
      assertThat(MountTable.find(mounted)).isEmpty();
      assertThat(Files.readString(log)).contains("thaw triton: saved the access profile of " + mounted);
    } finally {
      thaw.destroyForcibly();
      Path mounted = mountRoot.resolve("repository-0");
      if (MountTable.find(mounted).isPresent()) {
        MountTable.unmount(mounted, true);
      }
    }
  }

  @Test
  void eachModelsPartOfTheProfileIsPrefetchedAsItLoadsAndAModelLoadedForTheFirstTimeJoinsTheProfile()
      throws Exception {
    Path cache = tmp.resolve("cache-profile");
    Path first = tmp.resolve("thaw-triton-profile-1.log");
    int recorded = runAndInfer(first, cache, "mlp");
    assertThat(Files.readString(first)).contains("recording its access profile",
        "thaw triton: model 'mlp' served from zero in ");

    Path second = tmp.resolve("thaw-triton-profile-2.log");
    int grown = runAndInfer(second, cache, "mlp", "small");
    String log = Files.readString(second);
    assertThat(log).contains("is prefetched as the model loads", "thaw triton: loading model 'mlp'; prefetching its "
        + recorded + " recorded chunks");
    assertThat(log).as("small has no part in the profile yet").contains("thaw triton: loading model 'small'\n");
    assertThat(grown).as("small's chunks joined mlp's").isGreaterThan(recorded);
  }

  /** Runs thaw triton, infers each model over HTTP, stops it; returns the chunk count of the profile it saved. */
  private static int runAndInfer(Path log, Path cache, String... models) throws Exception {
    int[] ports = FreePorts.pick(3);
    Process thaw = thaw(log, "--cache", cache.toString(), "--", tritonserver.toString(),
        "--model-repository=s3://127.0.0.1:" + s3.port() + "/" + S3ProxyServer.BUCKET + "/triton/models",
        "--http-port=" + ports[0], "--grpc-port=" + ports[1], "--metrics-port=" + ports[2],
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1");
    try {
      await().atMost(Duration.ofSeconds(90)).ignoreExceptions()
          .until(() -> get(ports[0], "/v2/health/ready").statusCode() == 200);
      for (String model : models) {
        MlpSpec s = model.equals("mlp") ? spec : MlpSpec.forSize(128L << 10, 22);
        HttpResponse<String> answer = post(ports[0], "/v2/models/" + model + "/infer", jsonInferRequest(s, 1));
        assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
      }
      thaw.destroy();
      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
    } finally {
      thaw.destroyForcibly();
    }
    java.util.regex.Matcher saved = java.util.regex.Pattern.compile("saved the access profile of \\S+ \\((\\d+) chunks\\)")
        .matcher(Files.readString(log));
    assertThat(saved.find()).as("a profile saved in %s", log).isTrue();
    return Integer.parseInt(saved.group(1));
  }

  @Test
  void tritonExitingOnItsOwnEndsThawWithItsStatus() throws Exception {
    Path log = tmp.resolve("thaw-triton-exit.log");
    Process thaw = thaw(log, "--cache", tmp.resolve("cache-exit").toString(), "--", tritonserver.toString(),
        "--model-repository=s3://127.0.0.1:" + s3.port() + "/" + S3ProxyServer.BUCKET + "/triton/models",
        "--http-port=0", "--grpc-port=0", "--metrics-port=0", "--no-such-flag=1");

    assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(thaw.exitValue()).isEqualTo(2);
    assertThat(Files.readString(log)).contains("ort-server: unknown flag --no-such-flag",
        "thaw triton: Triton exited with status 2");
  }

  @Test
  void aRepositoryThawCannotServeIsRefusedInOneLine() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream realErr = System.err;
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    int status;
    try {
      status = Main.run("triton", "--", "tritonserver", "--model-repository=gs://bucket/models");
    } finally {
      System.setErr(realErr);
    }

    assertThat(status).isEqualTo(1);
    assertThat(err.toString(StandardCharsets.UTF_8).strip()).isEqualTo("thaw triton: error: "
        + "--model-repository=gs://bucket/models: Thaw mounts s3://, thaw:// and local repositories, not gs:// "
        + "(run tritonserver without thaw for Google Cloud Storage and Azure)");
  }

  private static Process thaw(Path log, String... args) throws IOException {
    return TritonFixtures.thaw(log, Arrays.asList(args));
  }

  private static HttpResponse<String> get(int port, String path) throws Exception {
    return TritonFixtures.get(port, path);
  }

  private static HttpResponse<String> post(int port, String path, String body) throws Exception {
    return TritonFixtures.post(port, path, body);
  }

  private static String jsonInferRequest(int batch) {
    return TritonFixtures.jsonInferRequest(spec, batch);
  }

  private static String jsonInferRequest(MlpSpec spec, int batch) {
    return TritonFixtures.jsonInferRequest(spec, batch);
  }
}
