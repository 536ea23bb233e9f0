package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.fuse.MountTable;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw triton --snapshot NAME}: the wrapped server (the example server standing in for {@code tritonserver},
 * its repository in S3Proxy, mounted through FUSE) is snapshotted with real CRIU once warm, and restored instead of
 * booted by the next start with the same command line; a start with another command line boots, saying why. The
 * tests run in order: each later one starts from the snapshot the first took.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TritonSnapshotTest {
  @TempDir
  static Path tmp;
  static S3ProxyServer s3;
  static Path tritonserver;
  static MlpSpec spec;
  static int[] ports;
  static Path snapshots;
  /** What the warm server answered to the first inference. */
  static String warmAnswer;
  /** Where the first run's snapshot keeps its images. */
  static Path images;

  @BeforeAll
  static void start() throws Exception {
    s3 = S3ProxyServer.start(tmp.resolve("s3"));
    Path repository = Files.createDirectories(tmp.resolve("repository"));
    spec = MlpSpec.forSize(512L << 10, 31);
    MlpGenerator.generate(repository, "mlp", spec);
    TritonFixtures.upload(s3, repository, "snap/models");
    tritonserver = TritonFixtures.tritonserver(tmp);
    ports = FreePorts.pick(3);
    snapshots = tmp.resolve("snapshots");
  }

  @AfterAll
  static void stop() throws IOException {
    s3.close();
  }

  @Test
  @Order(1)
  void theFirstRunBootsTritonAndOnceItHasAnsweredSnapshotsItOwnerOnlyAndTritonServesOn() throws Exception {
    Path log = tmp.resolve("first.log");
    Process thaw = thaw(log, tritonCommand());
    try {
      awaitReady();
      assertThat(Files.readString(log)).contains("thaw triton: not restored from snapshot mlp-server: no snapshot "
          + "named mlp-server was taken here yet; booting Triton");
      HttpResponse<String> answer = post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2));
      assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
      warmAnswer = answer.body();

      await().atMost(Duration.ofSeconds(120)).until(() -> Files.readString(log).contains("thaw triton: snapshot "
          + "mlp-server taken in "));
      String said = Files.readString(log);
      assertThat(said).contains("thaw triton: Triton is warm (model 'mlp' answered); taking snapshot mlp-server with "
          + "the probe POST http://127.0.0.1:");
      Matcher images = Pattern.compile("of images in (\\S+)\\)").matcher(said);
      assertThat(images.find()).isTrue();
      TritonSnapshotTest.images = Path.of(images.group(1));
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(TritonSnapshotTest.images)))
          .isEqualTo("rwx------");
      assertThat(said).as("Triton's own output reaches thaw's").contains("ort-server: ready in ");
      assertThat(post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2)).body())
          .as("Triton runs on after the snapshot").isEqualTo(warmAnswer);

      thaw.destroy(); // SIGTERM: passed on to Triton

      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(thaw.exitValue()).as("Triton's exit status after SIGTERM (a JVM's: 128 + 15)").isEqualTo(143);
      assertThat(Files.readString(log)).contains("ort-server: shutting down");
    } finally {
      end(thaw);
    }
  }

  @Test
  @Order(2)
  void theNextRunWithTheSameCommandLineRestoresTritonInsteadOfBootingAndItAnswersAsTheWarmOneDid() throws Exception {
    Path log = tmp.resolve("restore.log");
    Process thaw = thaw(log, tritonCommand());
    try {
      awaitReady();
      String said = Files.readString(log);
      assertThat(said).contains("thaw triton: restored Triton from snapshot mlp-server in ")
          .doesNotContain("booting Triton").doesNotContain("ort-server: ready in ");

      HttpResponse<String> answer = post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2));
      assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
      assertThat(answer.body()).isEqualTo(warmAnswer);
      assertThat(Files.readString(log)).as("a restored Triton is not snapshotted again")
          .doesNotContain("taking snapshot");

      thaw.destroy();

      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(thaw.exitValue()).as("the restored Triton's exit status is thaw's").isEqualTo(143);
      assertThat(Files.readString(log)).as("the restored Triton's output reaches thaw's")
          .contains("ort-server: shutting down").as("it never booted").doesNotContain("ort-server: ready in ");
    } finally {
      end(thaw);
    }
  }

  @Test
  @Order(3)
  void aSnapshotThatFailsToRestoreIsReplacedByABootSayingWhyInOneLineAndAFreshSnapshot() throws Exception {
    try (Stream<Path> files = Files.list(images)) {
      for (Path p : files.filter(f -> f.getFileName().toString().startsWith("pages-")).toList()) {
        Files.delete(p); // the memory of the process is gone
      }
    }
    Path log = tmp.resolve("damaged.log");
    Process thaw = thaw(log, tritonCommand());
    try {
      awaitReady();
      await().atMost(Duration.ofSeconds(10)).until(() -> Files.readString(log).contains("ort-server: ready in "));
      assertThat(Files.readString(log)).containsPattern("thaw triton: not restored from snapshot mlp-server: the "
          + "restore failed: criu restore from " + Pattern.quote(images.toString()) + " failed [^\\n]*; booting "
          + "Triton, which is snapshotted once warm\n").contains("ort-server: ready in ");

      HttpResponse<String> answer = post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2));
      assertThat(answer.body()).isEqualTo(warmAnswer);
      await().atMost(Duration.ofSeconds(120)).until(() -> Files.readString(log).contains("thaw triton: snapshot "
          + "mlp-server taken in "));

      thaw.destroy();
      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(thaw.exitValue()).isEqualTo(143);
    } finally {
      end(thaw);
    }
  }

  @Test
  @Order(4)
  void aRunWithAnotherCommandLineIsNotRestoredButBootsSayingWhyInOneLine() throws Exception {
    Path log = tmp.resolve("other.log");
    List<String> other = new ArrayList<>(tritonCommand());
    other.add("--load-model=mlp");
    Process thaw = thaw(log, other);
    try {
      awaitReady();
      // Triton's output reaches thaw's as its file grows: a moment after Triton said it
      await().atMost(Duration.ofSeconds(10)).until(() -> Files.readString(log).contains("ort-server: ready in "));
      assertThat(Files.readString(log)).contains("thaw triton: not restored from snapshot mlp-server: it was taken of "
          + "another command line (argument " + other.size() + " after -- is '--load-model=mlp' here, was nothing); "
          + "booting Triton, which is snapshotted once warm\n", "ort-server: ready in ");

      HttpResponse<String> answer = post(ports[0], "/v2/models/mlp/infer", jsonInferRequest(2));
      assertThat(answer.body()).isEqualTo(warmAnswer);

      thaw.destroy();
      assertThat(thaw.waitFor(60, TimeUnit.SECONDS)).isTrue();
    } finally {
      end(thaw);
    }
  }

  private static List<String> tritonCommand() {
    return List.of(tritonserver.toString(), "--model-repository=" + TritonFixtures.repositoryUrl(s3, "snap/models"),
        "--http-port=" + ports[0], "--grpc-port=" + ports[1],
        "--metrics-port=" + ports[2], "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1");
  }

  private static void awaitReady() {
    await().atMost(Duration.ofSeconds(120)).ignoreExceptions()
        .until(() -> get(ports[0], "/v2/health/ready").statusCode() == 200);
  }

  /** Ends what a failed test left: thaw, then whatever Triton it had, then the mount. */
  private static void end(Process thaw) throws IOException {
    thaw.descendants().forEach(ProcessHandle::destroyForcibly);
    thaw.destroyForcibly();
    Path mounted = Path.of(System.getProperty("java.io.tmpdir"), "thaw-triton-mlp-server", "repository-0");
    if (MountTable.find(mounted).isPresent()) {
      MountTable.unmount(mounted, true);
    }
  }

  private static Process thaw(Path log, List<String> triton) throws IOException {
    List<String> args = new ArrayList<>(List.of("--snapshot", "mlp-server", "--snapshots", snapshots.toString(),
        "--cache", tmp.resolve("cache").toString(), "--"));
    args.addAll(triton);
    return TritonFixtures.thaw(log, args);
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
}
