package dev.thaw.agent;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.store.ModelName;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An application that loads an ONNX model with ONNX Runtime's {@code createSession(path)}, run with the agent beside a
 * real sidecar: a path under a mapped prefix, or a {@code thaw://} location, is read from Thaw's lazy mount of the
 * pushed model and answers as the local copy does, and the load and its first inference join the mount's cold start;
 * with the sidecar away, a local path still loads, and why Thaw was skipped is said in one line.
 */
class OnnxRuntimeModelTest {
  static final String TOKEN = "agent-test-token-0123456789";

  @TempDir
  static Path tmp;
  static Process sidecar;
  static String sidecarUrl;
  static Path localModel;
  static MlpSpec spec;
  static String localAnswer;

  @BeforeAll
  static void start() throws Exception {
    Path repository = tmp.resolve("repository");
    spec = MlpSpec.forSize(256L << 10, 81);
    MlpGenerator.generate(repository, "mlp", spec);
    localModel = repository.resolve("mlp");
    String origin = tmp.resolve("origin").toUri().toString();
    try (var o = Origins.open(origin)) {
      new Pusher(o, 1 << 20, 4, PushProgress.NONE).push(localModel, ModelName.parse("demo/mlp:v1"));
    }
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    sidecar = startSidecar(port, origin);
    sidecarUrl = "http://127.0.0.1:" + port;

    AgentProcess local = AgentProcess.run(tmp.resolve("local"), null, Map.of(), List.of(),
        "dev.thaw.agent.apps.OrtApp", localModel.resolve("1/model.onnx").toString(), width());
    assertThat(local.exit()).as(local.err()).isZero();
    localAnswer = local.out();
  }

  @AfterAll
  static void stop() throws InterruptedException {
    if (sidecar != null) {
      sidecar.destroy(); // SIGTERM: the sidecar unmounts and exits
      if (!sidecar.waitFor(60, TimeUnit.SECONDS)) {
        sidecar.destroyForcibly();
      }
    }
  }

  /** The shipped sidecar ({@code thaw sidecar}), as its own process, ready. */
  static Process startSidecar(int port, String origin) throws IOException, InterruptedException {
    Path dir = Path.of(System.getProperty("thaw.sidecar.dir", "../sidecar/target")).toAbsolutePath().normalize();
    ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "-cp", dir.resolve("thaw-sidecar.jar") + ":" + dir.resolve("lib") + "/*",
        "dev.thaw.cli.Main", "sidecar", "--api-port", Integer.toString(port), "--origin", origin,
        "--cache", tmp.resolve("cache").toString(), "--mount-root", tmp.resolve("mounts").toString())
        .redirectErrorStream(true).redirectOutput(tmp.resolve("sidecar.log").toFile());
    pb.environment().put("THAW_API_TOKEN", TOKEN);
    pb.environment().put("THAW_SNAPSHOTS", tmp.resolve("snapshots").toString());
    Process p = pb.start();
    HttpClient http = HttpClient.newHttpClient();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (System.nanoTime() < deadline && p.isAlive()) {
      try {
        if (http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/readyz"))
            .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
          return p;
        }
      } catch (IOException notYet) {
        // starting
      }
      Thread.sleep(100);
    }
    p.destroyForcibly();
    throw new IOException("the sidecar did not become ready; see " + tmp.resolve("sidecar.log"));
  }

  @Test
  void aPathUnderAMappedPrefixIsReadFromThawsMountAndAnswersAsTheLocalCopy() throws Exception {
    String path = "/models/mlp/1/model.onnx"; // nothing there on this machine
    AgentProcess without = AgentProcess.run(tmp.resolve("without"), null, Map.of(), List.of(),
        "dev.thaw.agent.apps.OrtApp", path, width());
    assertThat(without.exit()).as("without the agent the path does not exist").isNotZero();

    AgentProcess with = AgentProcess.run(tmp.resolve("mapped"), "sidecar=" + sidecarUrl
        + ",map=/models/mlp=demo/mlp:v1", Map.of("THAW_API_TOKEN", TOKEN), List.of(), "dev.thaw.agent.apps.OrtApp",
        path, width());

    assertThat(with.exit()).as(with.err()).isZero();
    assertThat(with.out()).isEqualTo(localAnswer);
    var coldStart = coldStartOf("demo/mlp:v1");
    assertThat(coldStart.path("events_ms").fieldNames()).toIterable().as("the load's timeline, from the sidecar")
        .containsExactly("requested", "mounted", "first_byte", "server_ready", "first_inference");
    assertThat(with.err()).contains("thaw-agent: started; sidecar " + sidecarUrl + "; 1 model location mapped", "thaw-agent: demo/mlp:v1 is mounted at " + tmp.resolve("mounts"));
  }

  @Test
  void onJava17TheMappedModelLoadsAsWell() throws Exception {
    AgentProcess with = AgentProcess.run(AgentProcess.java17(), tmp.resolve("java17"), "sidecar=" + sidecarUrl
        + ",map=/models/mlp=demo/mlp:v1", Map.of("THAW_API_TOKEN", TOKEN), List.of(), "dev.thaw.agent.apps.OrtApp",
        "/models/mlp/1/model.onnx", width());

    assertThat(with.exit()).as(with.err()).isZero();
    assertThat(with.out()).isEqualTo(localAnswer);
  }

  @Test
  void djlLoadingAModelDirectoryUnderAMappedPrefixReadsItFromThawsMount() throws Exception {
    AgentProcess local = AgentProcess.run(tmp.resolve("djl-local"), null, Map.of(), List.of(),
        "dev.thaw.agent.apps.DjlApp", localModel.resolve("1").toString(), width());
    assertThat(local.exit()).as(local.err()).isZero();

    AgentProcess with = AgentProcess.run(tmp.resolve("djl"), "sidecar=" + sidecarUrl + ",map=/models/mlp="
        + "demo/mlp:v1", Map.of("THAW_API_TOKEN", TOKEN), List.of(), "dev.thaw.agent.apps.DjlApp", "/models/mlp/1",
        width());

    assertThat(with.exit()).as(with.err()).isZero();
    assertThat(with.out()).isEqualTo(local.out());
    assertThat(with.err()).contains("thaw-agent: demo/mlp:v1 is mounted at ");
  }

  @Test
  void aThawLocationIsReadFromTheMountOfItsModel() throws Exception {
    AgentProcess with = AgentProcess.run(tmp.resolve("thaw-url"), "sidecar=" + sidecarUrl,
        Map.of("THAW_API_TOKEN", TOKEN), List.of(), "dev.thaw.agent.apps.OrtApp", "thaw://demo/mlp:v1/1/model.onnx",
        width());

    assertThat(with.exit()).as(with.err()).isZero();
    assertThat(with.out()).isEqualTo(localAnswer);
  }

  @Test
  void attachedToARunningServerTheAgentServesItsLaterLoadsAndSaysTheEarlierOnesWereMissed() throws Exception {
    Path dir = Path.of(System.getProperty("thaw.sidecar.dir", "../sidecar/target")).toAbsolutePath().normalize();
    Path err = tmp.resolve("attached.err");
    ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-XX:+EnableDynamicAgentLoading", "-cp", AgentProcess.applicationClassPath(),
        "dev.thaw.agent.apps.WaitingOrtApp", localModel.resolve("1/model.onnx").toString(), width())
        .redirectError(err.toFile());
    pb.environment().put("THAW_API_TOKEN", TOKEN);
    Process server = pb.start();
    try (var out = new java.io.BufferedReader(new java.io.InputStreamReader(server.getInputStream()));
         var in = new java.io.PrintWriter(server.getOutputStream(), true)) {
      assertThat(out.readLine()).as("the model it loaded at start").isEqualTo(localAnswer.strip());
      assertThat(out.readLine()).isEqualTo("waiting");

      Process attach = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
          "-cp", dir.resolve("thaw-sidecar.jar") + ":" + dir.resolve("lib") + "/*", "dev.thaw.cli.Main", "attach",
          Long.toString(server.pid()), "--agent", AgentProcess.AGENT.toString(), "--options",
          "sidecar=" + sidecarUrl + ",map=/models/mlp=demo/mlp:v1").redirectErrorStream(true).start();
      String said = new String(attach.getInputStream().readAllBytes());
      assertThat(attach.waitFor()).as(said).isZero();
      assertThat(said).contains("thaw attach: the agent runs in process " + server.pid());

      in.println("/models/mlp/1/model.onnx");
      assertThat(out.readLine()).as("a later load, through Thaw's mount").isEqualTo(localAnswer.strip());
    } finally {
      server.destroy();
      server.waitFor(30, TimeUnit.SECONDS);
    }
    assertThat(java.nio.file.Files.readString(err)).contains("thaw-agent: started (attached); sidecar " + sidecarUrl,
        "thaw-agent: attached after ONNX Runtime was in use: the models it loaded before were missed (not served "
            + "through Thaw); later loads are", "thaw-agent: demo/mlp:v1 is mounted at ");
  }

  @Test
  void withTheSidecarAwayALocalPathStillLoadsAndWhyThawWasSkippedIsSaidInOneLine() throws Exception {
    AgentProcess with = AgentProcess.run(tmp.resolve("away"), "sidecar=http://127.0.0.1:1,map=" + localModel
        + "=demo/mlp:v1", Map.of(), List.of(), "dev.thaw.agent.apps.OrtApp",
        localModel.resolve("1/model.onnx").toString(), width());

    assertThat(with.exit()).as(with.err()).isZero();
    assertThat(with.out()).isEqualTo(localAnswer);
    assertThat(with.err().lines().filter(l -> l.contains("not through Thaw")).toList()).singleElement().asString()
        .startsWith("thaw-agent: " + localModel.resolve("1/model.onnx") + " is opened as it is, not through Thaw: "
            + "the sidecar at http://127.0.0.1:1 cannot be reached: ");
  }

  /** The sidecar's cold start of the mount of {@code source}. */
  @Test
  void aMappedModelThatCannotBeServedFailsWithTheLibrarysOwnErrorAndThawsReasonInside() throws Exception {
    AgentProcess with = AgentProcess.run(tmp.resolve("unserved"), "sidecar=http://127.0.0.1:1,map=/models/mlp="
        + "demo/mlp:v1", Map.of(), List.of(), "dev.thaw.agent.apps.OrtApp", "/models/mlp/1/model.onnx", width());

    assertThat(with.exit()).isNotZero();
    assertThat(with.err()).contains("Exception in thread \"main\" ai.onnxruntime.OrtException")
        .contains("Suppressed: java.lang.IllegalStateException: Thaw did not serve /models/mlp/1/model.onnx: the "
            + "sidecar at http://127.0.0.1:1 cannot be reached");
  }

  private static com.fasterxml.jackson.databind.JsonNode coldStartOf(String source) throws Exception {
    HttpResponse<String> answer = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(sidecarUrl
        + "/v1/coldstarts")).header("Authorization", "Bearer " + TOKEN).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
    for (var c : new com.fasterxml.jackson.databind.ObjectMapper().readTree(answer.body())) {
      if (c.path("model").asText().equals(source)) {
        return c;
      }
    }
    throw new AssertionError("no cold start of " + source + " in " + answer.body());
  }

  private static String width() {
    return Integer.toString(spec.inputDim());
  }
}
