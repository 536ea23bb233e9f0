package dev.thaw.sidecar;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The sidecar's REST API, served by a real sidecar with real FUSE mounts over a file origin. */
class SidecarApiTest {
  @TempDir static Path tmp;
  static ApplicationContext sidecar;
  static URI base;
  static Path mountRoot;
  static byte[] shard;
  static final HttpClient HTTP = HttpClient.newHttpClient();
  static final ObjectMapper JSON = new ObjectMapper();

  @BeforeAll
  static void startSidecarWithAPushedModel() throws IOException {
    Path model = Files.createDirectories(tmp.resolve("model/weights"));
    shard = new byte[3_000_000];
    new Random(7).nextBytes(shard);
    Files.write(model.resolve("shard.bin"), shard);
    Files.writeString(tmp.resolve("model/config.json"), "{\"layers\": 2}");
    String origin = tmp.resolve("origin").toUri().toString();
    try (var o = Origins.open(origin)) {
      new Pusher(o, 1 << 20, 4, PushProgress.NONE).push(tmp.resolve("model"), ModelName.parse("tiny:v1"));
    }
    mountRoot = tmp.resolve("mounts");
    Path direct = Files.createDirectories(tmp.resolve("direct-ok/models/small"));
    Files.writeString(direct.resolve("config.json"), "{\"direct\": true}");
    Files.writeString(direct.resolve("secret.bin"), "owner only");
    Files.setPosixFilePermissions(direct.resolve("secret.bin"),
        java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
    Files.setPosixFilePermissions(direct.resolve("config.json"),
        java.nio.file.attribute.PosixFilePermissions.fromString("rw-r-----"));
    Files.createSymbolicLink(tmp.resolve("direct-ok/etc-link"), Path.of("/etc"));
    var settings = SidecarSettings.standalone(tmp, origin);
    settings.put("thaw.direct-roots", tmp.resolve("direct-ok").toUri().toString());
    sidecar = Sidecar.start(settings);
    base = sidecar.getBean(EmbeddedServer.class).getURI();
  }

  @AfterAll
  static void stop() {
    if (sidecar != null) {
      sidecar.close();
    }
  }

  record Reply(int status, JsonNode json, String text) {}

  static Reply call(String method, String path, String body) throws Exception {
    HttpRequest.Builder b = SidecarSettings.api(sidecar, path).timeout(Duration.ofSeconds(30));
    b = body == null ? b.method(method, HttpRequest.BodyPublishers.noBody())
        : b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
    HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    JsonNode json = null;
    if (r.headers().firstValue("content-type").orElse("").contains("json") && !r.body().isEmpty()) {
      json = JSON.readTree(r.body());
    }
    return new Reply(r.statusCode(), json, r.body());
  }

  @Test
  void theControlApiListensOnLoopbackByDefault() {
    EmbeddedServer server = sidecar.getBean(EmbeddedServer.class);
    assertThat(server.getHost()).isIn("127.0.0.1", "localhost");
    assertThat(sidecar.getProperty("micronaut.server.host", String.class)).contains("127.0.0.1");
  }

  @Test
  void aMountedModelReadsAsPushedAndItsColdStartIsTimedUntilTheAgentSaysItIsWarm() throws Exception {
    Reply made = call("POST", "/v1/mounts", "{\"source\": \"tiny:v1\", \"path\": \"tiny\", \"prefetch\": \"off\"}");
    assertThat(made.status()).as(made.text()).isEqualTo(201);
    String id = made.json().get("id").asText();
    try {
      readTimeAndUnmount(made, id);
    } finally {
      call("DELETE", "/v1/mounts/" + id, null);
    }
  }

  private void readTimeAndUnmount(Reply made, String id) throws Exception {
    Path mnt = mountRoot.resolve("tiny");
    assertThat(made.json().get("mountpoint").asText()).isEqualTo(mnt.toString());
    assertThat(made.json().get("total_bytes").asLong()).isEqualTo(shard.length + 13);
    assertThat(Files.readAllBytes(mnt.resolve("weights/shard.bin"))).isEqualTo(shard);
    assertThat(Files.readString(mnt.resolve("config.json"))).isEqualTo("{\"layers\": 2}");

    Reply listed = call("GET", "/v1/mounts", null);
    JsonNode m = null;
    for (JsonNode x : listed.json()) {
      m = x.get("id").asText().equals(id) ? x : m;
    }
    assertThat(m).as(listed.text()).isNotNull();
    assertThat(m.get("id").asText()).isEqualTo(id);
    long total = shard.length + 13;
    assertThat(m.get("cached_bytes").asLong()).as("all read, so all cached").isEqualTo(total);
    assertThat(m.get("cache_fill").asDouble()).isEqualTo(1.0);
    assertThat(m.get("read_bytes").asLong()).isEqualTo(total);
    // what another test already put in the shared cache is not fetched again
    assertThat(m.get("fetched_bytes").get("origin").asLong()).isBetween(0L, total);

    Reply warm = call("POST", "/v1/agent/warm", "{\"pid\": 4242, \"paths\": [\"" + mnt.resolve("weights/shard.bin")
        + "\"], \"first_inference\": true}");
    assertThat(warm.status()).as(warm.text()).isEqualTo(200);
    String cs = m.get("cold_start").asText();
    JsonNode timeline = call("GET", "/v1/coldstarts/" + cs, null).json();
    assertThat(timeline.get("events_ms").fieldNames()).toIterable()
        .containsExactly("requested", "mounted", "first_byte", "server_ready", "first_inference");
    assertThat(timeline.get("phases")).extracting(p -> p.get("name").asText())
        .containsExactly("mount", "first_read", "load", "first_inference");
    assertThat(timeline.get("complete").asBoolean()).isTrue();
    assertThat(call("GET", "/v1/coldstarts", null).json().findValuesAsText("id")).contains(cs);

    String metrics = call("GET", "/metrics", null).text();
    assertThat(metrics).contains("thaw_mounts 1.0").contains("thaw_fetched_bytes_total{tier=\"origin\"}")
        .contains("thaw_cold_start_phase_seconds_count{phase=\"load\"} 1").contains("thaw_chunk_fetch_seconds_count");

    assertThat(call("DELETE", "/v1/mounts/" + id, null).status()).isEqualTo(204);
    assertThat(Files.exists(mnt.resolve("config.json"))).as("unmounted").isFalse();
    assertThat(call("GET", "/v1/mounts/" + id, null).status()).isEqualTo(404);
  }

  @Test
  void prefetchFillsTheCacheInTheBackground() throws Exception {
    Reply made = call("POST", "/v1/mounts", "{\"source\": \"tiny:v1\", \"path\": \"team/prefetched\","
        + " \"prefetch\": \"off\"}");
    assertThat(made.status()).as(made.text()).isEqualTo(201);
    String id = made.json().get("id").asText();
    try {
      Reply p = call("POST", "/v1/mounts/" + id + "/prefetch", "{\"mode\": \"all\"}");
      assertThat(p.status()).as(p.text()).isEqualTo(202);
      await().atMost(Duration.ofSeconds(20)).until(() -> call("GET", "/v1/mounts/" + id, null).json()
          .get("prefetch").asText().equals("all: done"));
      assertThat(call("GET", "/v1/mounts/" + id, null).json().get("cache_fill").asDouble()).isEqualTo(1.0);
      Reply noProfile = call("POST", "/v1/mounts/" + id + "/prefetch", "{\"mode\": \"profile\"}");
      assertThat(noProfile.status()).isEqualTo(404);
      assertThat(noProfile.json().get("error").asText()).contains("no recorded access profile");
    } finally {
      call("DELETE", "/v1/mounts/" + id, null);
    }
  }

  @Test
  void everyCallButHealthAndMetricsNeedsTheTokenWhichOnlyItsOwnerCanRead() throws Exception {
    for (String[] call : new String[][] {{"GET", "/v1/mounts"}, {"GET", "/v1/status"}, {"POST", "/v1/mounts"},
        {"POST", "/v1/snapshots/nosuch/restore"}, {"PUT", "/v1/demand"}, {"GET", "/openapi.yml"}}) {
      HttpRequest.Builder b = HttpRequest.newBuilder(base.resolve(call[1])).method(call[0],
          HttpRequest.BodyPublishers.ofString("{}")).header("Content-Type", "application/json");
      HttpResponse<String> none = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
      assertThat(none.statusCode()).as(call[0] + " " + call[1] + " without a token").isEqualTo(401);
      assertThat(none.headers().firstValue("WWW-Authenticate")).hasValueSatisfying(v -> assertThat(v).startsWith("Bearer"));
      assertThat(none.body()).contains("no token").contains(tmp.resolve("api-token").toString());
      HttpResponse<String> wrong = HTTP.send(b.header("Authorization", "Bearer not-the-token-at-all").build(),
          HttpResponse.BodyHandlers.ofString());
      assertThat(wrong.statusCode()).as(call[0] + " " + call[1] + " with a wrong token").isEqualTo(401);
    }
    for (String open : new String[] {"/healthz", "/readyz", "/metrics", "/"}) {
      assertThat(HTTP.send(HttpRequest.newBuilder(base.resolve(open)).build(), HttpResponse.BodyHandlers.ofString())
          .statusCode()).as(open + " without a token").isEqualTo(200);
    }
    Path tokenFile = tmp.resolve("api-token");
    assertThat(java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(tokenFile)))
        .isEqualTo("rw-------");
    assertThat(Files.readString(tokenFile).strip()).isEqualTo(sidecar.getBean(ApiToken.class).value()).hasSize(43);
  }

  @Test
  void anUnprivilegedLocalUserGetsNothingFromTheApi() throws Exception {
    // the hostile test's call, as user nobody: before, it ran its command as root
    Path proof = Files.createDirectories(tmp.resolve("nobody-was-here")).resolve("F");
    Files.setPosixFilePermissions(proof.getParent(), java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
    String body = "{\"command\":[\"/bin/sh\",\"-c\",\"id > " + proof + "\"]}";
    Process curl = new ProcessBuilder("runuser", "-u", "nobody", "--", "curl", "-sS", "-o", "/dev/null", "-w",
        "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", body,
        base.resolve("/v1/snapshots/nosuch/restore").toString()).redirectErrorStream(true).start();
    String code = new String(curl.getInputStream().readAllBytes()).strip();
    assertThat(curl.waitFor()).isZero();
    assertThat(code).isEqualTo("401");
    Process read = new ProcessBuilder("runuser", "-u", "nobody", "--", "cat", tmp.resolve("api-token").toString())
        .redirectErrorStream(true).start();
    String out = new String(read.getInputStream().readAllBytes());
    assertThat(read.waitFor()).as("nobody cannot read the token: " + out).isNotZero();
    assertThat(out).doesNotContain(sidecar.getBean(ApiToken.class).value());
    assertThat(proof).doesNotExist();

    // with the token, no request names a command either
    Reply withToken = call("POST", "/v1/snapshots/nosuch/restore", body);
    assertThat(withToken.status()).as(withToken.text()).isEqualTo(400);
    assertThat(withToken.json().get("field").asText()).isEqualTo("command");
    assertThat(proof).doesNotExist();
  }

  @Test
  void aTokenFileOthersCanReadIsRefusedAtStartSayingHowToFixIt() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("loose-token"));
    Path file = dir.resolve("api-token");
    Files.writeString(file, "a-token-that-is-long-enough-0123456789\n");
    Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    var settings = SidecarSettings.standalone(dir, tmp.resolve("origin").toUri().toString());
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> Sidecar.start(settings))
        .isInstanceOf(IllegalStateException.class).hasMessageContaining(file.toString())
        .hasMessageContaining("chmod 600");
  }

  @Test
  void aRequestMountsOnlyTheConfiguredOriginsAndWhatIsUnderTheDirectRoots() throws Exception {
    int before = call("GET", "/v1/mounts", null).json().size();
    String inRoot = tmp.resolve("direct-ok").toUri().toString();
    Object[][] refused = {
      {"{\"source\": \"file:///etc/\", \"path\": \"etc\"}", "source"},
      {"{\"source\": \"" + inRoot + "etc-link/\", \"path\": \"etc2\"}", "source"},
      {"{\"source\": \"" + inRoot + "models/../../\", \"path\": \"up\"}", "source"},
      {"{\"source\": \"s3://someone-elses-bucket/\", \"path\": \"s3\"}", "source"},
      {"{\"source\": \"tiny:v1\", \"origin\": \"file:///etc/\", \"path\": \"o\"}", "origin"},
    };
    for (Object[] c : refused) {
      Reply r = call("POST", "/v1/mounts", (String) c[0]);
      assertThat(r.status()).as(c[0] + " -> " + r.text()).isIn(400, 403);
      assertThat(r.json().get("field").asText()).as((String) c[0]).isEqualTo(c[1]);
    }
    assertThat(call("GET", "/v1/mounts", null).json()).as("nothing mounted").hasSize(before);
    assertThat(mountRoot.resolve("etc")).doesNotExist();

    Reply ok = call("POST", "/v1/mounts", "{\"source\": \"" + inRoot + "models/\", \"path\": \"direct\"}");
    assertThat(ok.status()).as(ok.text()).isEqualTo(201);
    try {
      assertThat(Files.readString(mountRoot.resolve("direct/small/config.json"))).isEqualTo("{\"direct\": true}");
      // modes no wider than the source's, and read-only
      assertThat(java.nio.file.attribute.PosixFilePermissions.toString(
          Files.getPosixFilePermissions(mountRoot.resolve("direct/small/secret.bin")))).isEqualTo("r--------");
      assertThat(java.nio.file.attribute.PosixFilePermissions.toString(
          Files.getPosixFilePermissions(mountRoot.resolve("direct/small/config.json")))).isEqualTo("r--r-----");
    } finally {
      call("DELETE", "/v1/mounts/" + ok.json().get("id").asText(), null);
    }
  }

  @Test
  void bodiesAreReadAsWrittenAndEveryMistakeIsA400NamingTheField() throws Exception {
    int before = call("GET", "/v1/mounts", null).json().size();
    String[][] cases = {
      {"POST", "/v1/mounts", "{\"source\": [\"tiny:v1\"], \"path\": \"c1\"}", "source"},
      {"POST", "/v1/mounts", "{\"source\": \"tiny:v1\", \"path\": \"c2\", \"bogus\": 1}", "bogus"},
      {"POST", "/v1/mounts", "{\"source\": 5}", "source"},
      {"POST", "/v1/mounts", "{\"source\": {\"a\": 1}}", "source"},
      {"POST", "/v1/agent/warm", "{\"pid\": \"123\", \"paths\": [\"/x\"]}", "pid"},
      {"POST", "/v1/agent/warm", "{\"pid\": 1.5, \"paths\": [\"/x\"]}", "pid"},
      {"POST", "/v1/agent/warm", "{\"pid\": 1, \"paths\": \"/x\"}", "paths"},
      {"POST", "/v1/snapshots", "{\"pid\": 99999999999999999999, \"name\": \"n\"}", "pid"},
      {"POST", "/v1/snapshots/x/restore", "{\"ready_timeout_s\": \"soon\"}", "ready_timeout_s"},
    };
    for (String[] c : cases) {
      Reply r = call(c[0], c[1], c[2]);
      assertThat(r.status()).as(c[2] + " -> " + r.text()).isEqualTo(400);
      assertThat(r.json().get("field").asText()).as(c[2]).isEqualTo(c[3]);
      assertThat(r.json().get("error").asText()).contains(c[3]).doesNotContain("CoercionConfig");
    }
    Reply notAnObject = call("POST", "/v1/mounts", "[1, 2]");
    assertThat(notAnObject.status()).isEqualTo(400);
    assertThat(notAnObject.json().get("error").asText()).startsWith("the body is not the JSON");
    assertThat(call("GET", "/v1/mounts", null).json()).as("nothing mounted").hasSize(before);
  }

  @Test
  void badRequestsAre400sNamingTheFieldAndNothingEscapesTheMountRoot() throws Exception {
    Files.createDirectories(tmp.resolve("elsewhere"));
    Files.createSymbolicLink(mountRoot.resolve("link"), tmp.resolve("elsewhere"));
    int before = call("GET", "/v1/mounts", null).json().size();
    Object[][] cases = {
      {"{}", 400, "source"},
      {"{\"source\": \"  \"}", 400, "source"},
      {"{\"source\": \"tiny:v1\", \"path\": \"../outside\"}", 400, "path"},
      {"{\"source\": \"tiny:v1\", \"path\": \"a/../../outside\"}", 400, "path"},
      {"{\"source\": \"tiny:v1\", \"path\": \"/etc/thaw\"}", 400, "path"},
      {"{\"source\": \"tiny:v1\", \"path\": \"link/inside\"}", 400, "path"},
      {"{\"source\": \"tiny:v1\", \"prefetch\": \"sometimes\"}", 400, "prefetch"},
      {"{\"source\": \"tiny:v1\", \"origin\": \"gopher://old\"}", 403, "origin"},
      {"{\"source\": \"Not A Name!\"}", 400, "source"},
      {"{\"source\": \"missing:v9\"}", 404, "source"},
      {"{\"source\": \"file:///data\", \"origin\": \"file:///x\"}", 400, "origin"},
    };
    for (Object[] c : cases) {
      Reply r = call("POST", "/v1/mounts", (String) c[0]);
      assertThat(r.status()).as(c[0] + " -> " + r.text()).isEqualTo(c[1]);
      assertThat(r.json().get("field").asText()).as((String) c[0]).isEqualTo(c[2]);
      assertThat(r.json().get("error").asText()).isNotBlank();
    }
    assertThat(Files.list(tmp.resolve("elsewhere"))).as("nothing made through the link").isEmpty();
    assertThat(call("GET", "/v1/mounts", null).json()).as("no mount made").hasSize(before);
    assertThat(call("POST", "/v1/mounts", "{not json").status()).isEqualTo(400);
    assertThat(call("DELETE", "/v1/mounts/m999", null).status()).isEqualTo(404);
    assertThat(call("GET", "/v1/coldstarts/cs999", null).status()).isEqualTo(404);
    Reply noPid = call("POST", "/v1/agent/warm", "{\"paths\": [\"/x\"]}");
    assertThat(noPid.status()).isEqualTo(400);
    assertThat(noPid.json().get("field").asText()).isEqualTo("pid");
    Reply unknownPath = call("POST", "/v1/agent/warm", "{\"pid\": 5, \"paths\": [\"/nowhere/model.onnx\"]}");
    assertThat(unknownPath.status()).isEqualTo(404);
    assertThat(unknownPath.json().get("field").asText()).isEqualTo("paths");
  }

  @Test
  void twoMountsMayNotShareAPath() throws Exception {
    Reply first = call("POST", "/v1/mounts", "{\"source\": \"tiny:v1\", \"path\": \"shared\", \"prefetch\": \"off\"}");
    assertThat(first.status()).as(first.text()).isEqualTo(201);
    try {
      Reply second = call("POST", "/v1/mounts", "{\"source\": \"tiny:v1\", \"path\": \"shared\"}");
      assertThat(second.status()).isEqualTo(409);
      assertThat(second.json().get("field").asText()).isEqualTo("path");
    } finally {
      call("DELETE", "/v1/mounts/" + first.json().get("id").asText(), null);
    }
  }

  @Test
  void healthReadinessPlanAndTheOpenApiDocumentAreServed() throws Exception {
    assertThat(call("GET", "/healthz", null).json().get("status").asText()).isEqualTo("ok");
    JsonNode ready = call("GET", "/readyz", null).json();
    assertThat(ready.get("status").asText()).isEqualTo("ready");
    assertThat(ready.get("mode").asText()).isEqualTo("standalone");
    JsonNode plan = call("GET", "/v1/plan", null).json();
    assertThat(plan.get("mode").asText()).isEqualTo("standalone");
    assertThat(plan.get("plan").isNull()).as("no plan without a cluster").isTrue();
    Reply demand = call("PUT", "/v1/demand", "{\"model\": \"m:v1\", \"replicas\": 1}");
    assertThat(demand.status()).as("demand is for cluster mode").isEqualTo(409);
    assertThat(demand.json().get("error").asText()).contains("standalone");
    JsonNode status = call("GET", "/v1/status", null).json();
    assertThat(status.get("peers")).isEmpty();
    assertThat(status.get("cache").get("capacity_bytes").asLong()).isEqualTo(1L << 30);
    Reply api = call("GET", "/openapi.yml", null);
    assertThat(api.status()).isEqualTo(200);
    assertThat(api.text()).contains("openapi: 3").contains("/v1/mounts").contains("/v1/mounts/{id}/prefetch")
        .contains("/v1/agent/warm").contains("/v1/coldstarts").contains("/readyz");
    assertThat(call("GET", "/metrics", null).text()).contains("thaw_cache_capacity_bytes 1.073741824E9");
  }

  @Test
  void theSnapshotsKeptOnThisNodeAreListedAndADumpInProgressIsNot() throws Exception {
    // the layout thaw checkpoint leaves: SNAPSHOTS/NAME/KEYTAG/ with snapshot.json beside the images
    Path kept = Files.createDirectories(tmp.resolve("snapshots/llama/0123456789abcdef"));
    Files.writeString(kept.resolve("snapshot.json"), "{}");
    Files.write(kept.resolve("pages-1.img"), new byte[4096]);
    Path dumping = Files.createDirectories(tmp.resolve("snapshots/llama/.dump-1234"));
    Files.writeString(dumping.resolve("snapshot.json"), "{}");
    JsonNode list = call("GET", "/v1/snapshots", null).json();
    assertThat(list).hasSize(1);
    assertThat(list.get(0).get("name").asText()).isEqualTo("llama");
    assertThat(list.get(0).get("key").asText()).isEqualTo("0123456789abcdef");
    assertThat(list.get(0).get("bytes").asLong()).isEqualTo(4096 + 2);
    assertThat(list.get(0).get("images").asText()).isEqualTo(kept.toString());
  }
}
