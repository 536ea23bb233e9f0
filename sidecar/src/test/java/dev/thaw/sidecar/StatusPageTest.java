package dev.thaw.sidecar;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.store.ModelName;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The status page in headless Chromium (Debian's, installed by scripts/test): it loads without console errors and
 * draws a waterfall for a cold start this test caused. The screenshot stays in target/status-page.png.
 */
class StatusPageTest {
  @TempDir static Path tmp;
  static ApplicationContext sidecar;
  static URI base;

  @BeforeAll
  static void aSidecarWithOneColdStart() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    Files.write(model.resolve("weights.bin"), new byte[2_000_000]);
    String origin = tmp.resolve("origin").toUri().toString();
    try (var o = Origins.open(origin)) {
      new Pusher(o, 1 << 20, 2, PushProgress.NONE).push(model, ModelName.parse("page:v1"));
    }
    Path mounts = tmp.resolve("mounts");
    sidecar = Sidecar.start(SidecarSettings.standalone(tmp, origin));
    base = sidecar.getBean(EmbeddedServer.class).getURI();
    HttpClient http = HttpClient.newHttpClient();
    HttpResponse<String> made = http.send(SidecarSettings.api(sidecar, "/v1/mounts")
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"page:v1\", \"prefetch\": \"off\"}")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(made.statusCode()).as(made.body()).isEqualTo(201);
    Files.readAllBytes(mounts.resolve("page-v1/weights.bin")); // the server's load
    HttpResponse<String> warm = http.send(SidecarSettings.api(sidecar, "/v1/agent/warm")
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{\"pid\": 1, \"mount\": \"m1\", \"first_inference\": true}")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(warm.statusCode()).as(warm.body()).isEqualTo(200);
  }

  @AfterAll
  static void stop() {
    if (sidecar != null) {
      sidecar.close();
    }
  }

  record Run(int exit, String stdout, String stderr) {}

  private static Run chromium(String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of("chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--enable-logging=stderr", "--v=0",
        "--user-data-dir=" + tmp.resolve("chromium-profile"), "--virtual-time-budget=4000"));
    cmd.addAll(List.of(args));
    Path out = tmp.resolve("chromium.out");
    Path err = tmp.resolve("chromium.err");
    Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("chromium did not finish in 60 s: " + Files.readString(err));
    }
    return new Run(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8), Files.readString(err));
  }

  @Test
  void thePageLoadsWithoutConsoleErrorsAndDrawsTheColdStartAsAWaterfall() throws Exception {
    Run dom = chromium("--dump-dom", base.resolve("/").toString() + "#token=" + sidecar.getBean(ApiToken.class).value());
    assertThat(dom.exit()).as(dom.stderr()).isZero();
    List<String> console = dom.stderr().lines().filter(l -> l.contains("CONSOLE") || l.contains("Uncaught")).toList();
    assertThat(console).as("console messages").isEmpty();
    assertThat(dom.stdout()).contains("Thaw sidecar").contains("ready, standalone mode, 1 mount(s)")
        .contains("data-cold-start=\"cs1\"").contains("page:v1").as("no refresh failed").contains("<div id=\"error\"></div>");
    for (String phase : List.of("mount", "first_read", "load", "first_inference")) {
      assertThat(dom.stdout()).as("a bar for " + phase).contains("data-phase=\"" + phase + "\"");
    }

    Path shot = Path.of("target", "status-page.png").toAbsolutePath();
    Files.deleteIfExists(shot);
    Run screenshot = chromium("--window-size=1200,900", "--screenshot=" + shot, base.resolve("/").toString() + "#token=" + sidecar.getBean(ApiToken.class).value());
    assertThat(screenshot.exit()).as(screenshot.stderr()).isZero();
    assertThat(Files.size(shot)).as("a PNG for people to look at").isGreaterThan(10_000);
  }
}
