package dev.thaw.sidecar.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.sidecar.MountService;
import dev.thaw.sidecar.Sidecar;
import dev.thaw.sidecar.SidecarSettings;
import dev.thaw.store.ModelName;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.testkit.EtcdCluster;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.io.TempDir;

/** Cluster mode over a real three-member etcd on loopback: membership, the leader, its plan, losing etcd. */
class ClusterTest {
  static final Duration TTL = Duration.ofSeconds(3);
  @TempDir static Path tmp;
  static EtcdCluster etcd;
  static String origin;
  final List<ApplicationContext> started = new ArrayList<>();
  String prefix;

  @BeforeAll
  static void startEtcdAndPushAModel() throws Exception {
    etcd = EtcdCluster.start(tmp.resolve("etcd"), 3);
    Path model = Files.createDirectories(tmp.resolve("model"));
    Files.write(model.resolve("weights.bin"), new byte[1_500_000]);
    origin = tmp.resolve("origin").toUri().toString();
    try (var o = Origins.open(origin)) {
      new Pusher(o, 1 << 20, 2, PushProgress.NONE).push(model, ModelName.parse("tiny:v1"));
    }
  }

  @AfterAll
  static void stopEtcd() {
    if (etcd != null) {
      etcd.close();
    }
  }

  @org.junit.jupiter.api.BeforeEach
  void ownKeys(TestInfo test) {
    prefix = "/thaw-" + test.getTestMethod().orElseThrow().getName(); // each test its own cluster in etcd
  }

  @AfterEach
  void stopSidecars() {
    started.forEach(ApplicationContext::close);
  }

  private ApplicationContext member(String node) {
    Map<String, Object> p = SidecarSettings.member(tmp.resolve(prefix.substring(1) + "/" + node), origin,
        etcd.endpoints(), prefix, node);
    p.put("thaw.cluster.zone", "zone-" + node);
    p.put("thaw.cluster.lease-ttl", TTL.toSeconds() + "s");
    p.put("thaw.cluster.replan-interval", "2s");
    p.put("thaw.cluster.debounce", "100ms");
    ApplicationContext c = Sidecar.start(p);
    started.add(c);
    return c;
  }

  private static ClusterMember of(ApplicationContext c) {
    return c.getBean(ClusterMember.class);
  }

  private static List<ApplicationContext> leaders(List<ApplicationContext> members) {
    return members.stream().filter(c -> c.isRunning() && of(c).isLeader()).toList();
  }

  private static long revision(ApplicationContext c) {
    return ((Number) of(c).planView().get("revision")).longValue();
  }

  @Test
  void threeSidecarsElectOneLeaderWhosePlanReachesAllAndAnotherTakesOverWithinTheTtlWhenItDies() throws Exception {
    List<ApplicationContext> members = List.of(member("a"), member("b"), member("c"));
    await().atMost(Duration.ofSeconds(15)).until(() -> leaders(members).size() == 1
        && members.stream().allMatch(c -> of(c).peers().size() == 2));
    of(members.get(1)).setDemand("tiny:v1", 3, 1_500_000, 20);
    // the plan that places the demand reaches every member
    await().atMost(Duration.ofSeconds(15)).until(() -> members.stream().allMatch(c -> {
      JsonNode plan = (JsonNode) of(c).planView().get("plan");
      return plan != null && plan.path("replicas").path("tiny:v1").size() > 0;
    }));
    JsonNode plan = (JsonNode) of(members.getFirst()).planView().get("plan");
    int placed = 0;
    for (JsonNode n : plan.path("replicas").path("tiny:v1")) {
      placed += n.asInt();
    }
    assertThat(placed).isEqualTo(3);
    assertThat(plan.path("members")).extracting(JsonNode::asText).containsExactlyInAnyOrder("a", "b", "c");
    // the members it assigns the model to fetch it ahead, into their caches
    for (ApplicationContext c : members) {
      String node = of(c).nodeId();
      if (plan.path("replicas").path("tiny:v1").path(node).asInt() > 0) {
        await().atMost(Duration.ofSeconds(15)).until(() -> "prefetched".equals(
            ((Map<?, ?>) of(c).planView().get("acting")).get("tiny:v1")));
        assertThat(((Number) c.getBean(MountService.class).cacheView().get("used_bytes")).longValue())
            .as(node + " holds the model").isGreaterThanOrEqualTo(1_500_000);
      }
    }

    ApplicationContext old = leaders(members).getFirst();
    long before = members.stream().mapToLong(ClusterTest::revision).max().orElseThrow();
    List<ApplicationContext> rest = members.stream().filter(c -> c != old).toList();
    long t0 = System.nanoTime();
    of(old).crash(); // no resignation, no revoke: its lease runs out
    old.close();
    await().atMost(TTL.plusSeconds(1)).pollInterval(Duration.ofMillis(50)).until(() -> leaders(rest).size() == 1);
    Duration takeover = Duration.ofNanos(System.nanoTime() - t0);
    assertThat(takeover).as("a new leader within the lease TTL plus a second").isLessThanOrEqualTo(TTL.plusSeconds(1));
    // the new leader plans without the dead member, and the revisions go on rising
    await().atMost(Duration.ofSeconds(10)).until(() -> rest.stream().allMatch(c -> {
      JsonNode p = (JsonNode) of(c).planView().get("plan");
      return p != null && p.path("revision").asLong() > before && p.path("members").size() == 2;
    }));
    for (ApplicationContext c : rest) {
      assertThat(revision(c)).isGreaterThan(before);
      assertThat(of(c).peers()).hasSize(1);
    }
    // no more demand: what was prefetched for the plan goes first when the cache needs room
    of(rest.getFirst()).setDemand("tiny:v1", 0, 1_500_000, 20);
    for (ApplicationContext c : rest) {
      if ("prefetched".equals(((Map<?, ?>) of(c).planView().get("acting")).get("tiny:v1"))) {
        await().atMost(Duration.ofSeconds(15)).until(() -> "unassigned, first to evict".equals(
            ((Map<?, ?>) of(c).planView().get("acting")).get("tiny:v1")));
      }
    }
  }

  @Test
  void withEtcdGoneLocalWorkContinuesReadyzSaysDegradedAndTheMemberRejoinsWhenItReturns() throws Exception {
    ApplicationContext c = member("solo");
    await().atMost(Duration.ofSeconds(15)).until(() -> of(c).isLeader() && of(c).degraded() == null);
    HttpClient http = HttpClient.newHttpClient();
    var base = c.getBean(EmbeddedServer.class).getURI();
    etcd.stop();
    try {
      // it stops leading before its lease could lapse and another be elected
      await().atMost(TTL).pollInterval(Duration.ofMillis(50)).until(() -> !of(c).isLeader());
      await().atMost(TTL.plusSeconds(5)).until(() -> of(c).degraded() != null);
      HttpResponse<String> ready = http.send(HttpRequest.newBuilder(base.resolve("/readyz")).build(),
          HttpResponse.BodyHandlers.ofString());
      assertThat(ready.statusCode()).isEqualTo(200);
      assertThat(ready.body()).contains("\"status\":\"degraded\"").contains("unreachable");
      // mounting and reading go on from the origin and the cache
      HttpResponse<String> made = http.send(SidecarSettings.api(c, "/v1/mounts")
          .header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"tiny:v1\", \"path\": \"tiny\"}")).build(),
          HttpResponse.BodyHandlers.ofString());
      assertThat(made.statusCode()).as(made.body()).isEqualTo(201);
      Path mounted = Path.of(new com.fasterxml.jackson.databind.ObjectMapper().readTree(made.body())
          .get("mountpoint").asText());
      assertThat(Files.size(mounted.resolve("weights.bin"))).isEqualTo(1_500_000);
      assertThat(Files.readAllBytes(mounted.resolve("weights.bin"))).hasSize(1_500_000);
    } finally {
      etcd.restart();
    }
    await().atMost(Duration.ofSeconds(20)).until(() -> of(c).degraded() == null && of(c).isLeader());
    HttpResponse<String> ready = http.send(HttpRequest.newBuilder(base.resolve("/readyz")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(ready.body()).contains("\"status\":\"ready\"").contains("\"mode\":\"cluster\"");
    assertThat(of(c).members()).containsKey("solo");
    assertThat(of(c).members().get("solo").running().get("tiny:v1")).as("its mount registered").isOne();
  }

  @Test
  void demandIsSetAndReadThroughTheApiAndBadDemandIsRefusedNamingTheField() throws Exception {
    ApplicationContext c = member("d");
    await().atMost(Duration.ofSeconds(15)).until(() -> of(c).degraded() == null);
    HttpClient http = HttpClient.newHttpClient();
    var base = c.getBean(EmbeddedServer.class).getURI();
    java.util.function.Function<String, HttpResponse<String>> put = body -> {
      try {
        return http.send(SidecarSettings.api(c, "/v1/demand").header("Content-Type", "application/json")
            .PUT(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    };
    String[][] bad = {
      {"{\"replicas\": 1}", "model"},
      {"{\"model\": \"Not A Name!\", \"replicas\": 1}", "model"},
      {"{\"model\": \"m:v1\"}", "replicas"},
      {"{\"model\": \"m:v1\", \"replicas\": -1}", "replicas"},
      {"{\"model\": \"m:v1\", \"replicas\": 1, \"weight_bytes\": -5}", "weight_bytes"},
      {"{\"model\": \"m:v1\", \"replicas\": 1, \"snapshot\": \"../x\"}", "snapshot"},
    };
    for (String[] b : bad) {
      HttpResponse<String> r = put.apply(b[0]);
      assertThat(r.statusCode()).as(b[0] + " -> " + r.body()).isEqualTo(400);
      assertThat(r.body()).contains("\"field\":\"" + b[1] + "\"");
    }
    HttpResponse<String> ok = put.apply("{\"model\": \"m:v1\", \"replicas\": 2, \"weight_bytes\": 1000}");
    assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
    HttpResponse<String> nested = put.apply("{\"model\": \"llama/8b:v1\", \"replicas\": 1}");
    assertThat(nested.statusCode()).as("a name with / as the README writes it: " + nested.body()).isEqualTo(200);
    JsonNode listed = new com.fasterxml.jackson.databind.ObjectMapper().readTree(http.send(SidecarSettings.api(c,
        "/v1/demand").build(), HttpResponse.BodyHandlers.ofString()).body());
    assertThat(listed.get("m:v1").get("replicas").asInt()).isEqualTo(2);
    assertThat(listed.get("llama/8b:v1").get("replicas").asInt()).isEqualTo(1);
  }
}
