package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.FreePorts;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Triton behind the wrapper, with the example server standing in for {@code tritonserver} (same flags, same
 * protocols): the public ports are Thaw's, Triton runs on loopback with explicit control, and its exit is the
 * wrapper's.
 */
class TritonWrapperTest {
  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  @TempDir
  static Path dir;
  static Path tritonserver;
  static Path repository;
  static MlpSpec spec;

  @BeforeAll
  static void prepare() throws IOException {
    repository = Files.createDirectories(dir.resolve("models"));
    spec = MlpSpec.forSize(256L << 10, 12);
    MlpGenerator.generate(repository, "mlp", spec);
    // a tritonserver on PATH's terms: an executable that takes Triton's flags
    tritonserver = dir.resolve("tritonserver");
    Files.writeString(tritonserver, "#!/bin/sh\nexec '" + Path.of(System.getProperty("java.home"), "bin", "java")
        + "' -XX:-UsePerfData -Xmx256m --enable-native-access=ALL-UNNAMED -cp '" + System.getProperty("java.class.path")
        + "' dev.thaw.examples.ortserver.OrtServer --ort-native-dir='"
        + Path.of("target", "ort-natives").toAbsolutePath() + "' \"$@\"\n");
    Files.setPosixFilePermissions(tritonserver, PosixFilePermissions.fromString("rwxr-xr-x"));
  }

  @Test
  void tritonsPublicPortsAnswerThroughThawAndTritonRunsWithExplicitControl() throws Exception {
    int[] ports = FreePorts.pick(3);
    TritonCommandLine line = TritonCommandLine.parse(List.of(tritonserver.toString(),
        "--model-repository=" + repository, "--model-control-mode=explicit", "--http-port=" + ports[0],
        "--grpc-port", Integer.toString(ports[1]),
        "--metrics-port=" + ports[2], "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1"), Map.of());

    try (TritonWrapper wrapper = TritonWrapper.start(line, List.of(repository))) {
      awaitReady(ports[0]);
      ManagedChannel channel = ProxyTesting.channel(ports[1]);
      try {
        RepositoryIndexResponse index = GRPCInferenceServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(Duration.ofSeconds(10)).repositoryIndex(RepositoryIndexRequest.getDefaultInstance());
        assertThat(index.getModels(0).getName()).isEqualTo("mlp");
        assertThat(index.getModels(0).getState()).as("explicit control: nothing loaded at start").isEmpty();
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
      assertThat(get(ports[2], "/metrics").body()).contains("# TYPE nv_inference_request_success counter");
      assertThat(Files.readString(Path.of("/proc", Long.toString(wrapper.pid()), "cmdline")).split("\0"))
          .contains("--model-control-mode=explicit", "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
              "--metrics-address=127.0.0.1", "--model-repository=" + repository);

      int status = wrapper.stop();

      assertThat(status).as("Triton's exit status after SIGTERM").isEqualTo(143);
      assertThat(wrapper.waitFor()).isEqualTo(143);
    }
  }

  @Test
  void tritonsFailureToStartIsTheWrappersExitStatus() throws Exception {
    int[] ports = FreePorts.pick(3);
    TritonCommandLine line = TritonCommandLine.parse(List.of(tritonserver.toString(),
        "--model-repository=" + dir.resolve("no-such-repository"), "--http-port=" + ports[0],
        "--grpc-port=" + ports[1], "--metrics-port=" + ports[2]), Map.of());

    try (TritonWrapper wrapper = TritonWrapper.start(line, List.of(dir.resolve("no-such-repository")))) {
      assertThat(wrapper.waitFor()).isEqualTo(1);
    }
  }

  @Test
  void aPublicPortInUseIsReportedBeforeTritonStarts() throws Exception {
    try (ServerSocket taken = new ServerSocket(0)) {
      TritonCommandLine line = TritonCommandLine.parse(List.of(tritonserver.toString(),
          "--model-repository=" + repository, "--http-port=" + taken.getLocalPort()), Map.of());

      assertThatThrownBy(() -> TritonWrapper.start(line, List.of(repository)))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("cannot listen for HTTP on").hasMessageContaining(":" + taken.getLocalPort());
    }
  }

  @Test
  void aMissingTritonExecutableIsNamed() {
    TritonCommandLine line = TritonCommandLine.parse(List.of(dir.resolve("no-tritonserver").toString(),
        "--model-repository=" + repository, "--http-port=0", "--grpc-port=0", "--metrics-port=0"), Map.of());

    assertThatThrownBy(() -> TritonWrapper.start(line, List.of(repository)))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("cannot start Triton (" + dir.resolve("no-tritonserver") + "): ");
  }

  private static void awaitReady(int port) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try {
        if (get(port, "/v2/health/ready").statusCode() == 200) {
          return;
        }
      } catch (IOException notYet) {
        // the proxy answers 502 or drops the connection until Triton listens
      }
      assertThat(System.nanoTime()).as("ready within 60 s").isLessThan(deadline);
      Thread.sleep(100);
    }
  }

  private static HttpResponse<String> get(int port, String path) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
