package dev.thaw.sidecar.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.sidecar.MountService;
import dev.thaw.sidecar.Sidecar;
import dev.thaw.sidecar.SidecarSettings;
import dev.thaw.store.ModelName;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.testkit.EtcdCluster;
import dev.thaw.testkit.NginxServer;
import dev.thaw.testkit.ThrottlingProxy;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.micronaut.context.ApplicationContext;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.io.TempDir;

/**
 * Peers share verified chunks: a sidecar asks the members holding a model before the origin, whose bytes are counted
 * where they leave it (nginx behind a counting proxy).
 */
class PeerSharingTest {
  static final String TOKEN = SidecarSettings.TOKEN;
  static final HttpClient HTTP = HttpClient.newHttpClient();
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir static Path tmp;
  static EtcdCluster etcd;
  static NginxServer nginx;
  static ThrottlingProxy origin;
  static byte[] weights;
  static String digest;
  final List<ApplicationContext> started = new ArrayList<>();
  String prefix;

  @BeforeAll
  static void startEtcdAndAnHttpOrigin() throws Exception {
    etcd = EtcdCluster.start(tmp.resolve("etcd"), 1);
    Path model = Files.createDirectories(tmp.resolve("model"));
    weights = new byte[4 << 20];
    new Random(11).nextBytes(weights);
    Files.write(model.resolve("weights.bin"), weights);
    Path root = tmp.resolve("origin");
    try (var o = Origins.open(root.toUri().toString())) {
      digest = new Pusher(o, 256 << 10, 4, PushProgress.NONE).push(model, ModelName.parse("shared:v1")).digest();
    }
    nginx = NginxServer.start(root, tmp.resolve("nginx"), System.err);
    origin = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", nginx.port()), 2e9, 64 << 20);
  }

  @AfterAll
  static void stop() {
    if (origin != null) {
      origin.close();
    }
    if (nginx != null) {
      nginx.close();
    }
    if (etcd != null) {
      etcd.close();
    }
  }

  @BeforeEach
  void ownKeys(TestInfo test) {
    prefix = "/thaw-" + test.getTestMethod().orElseThrow().getName();
  }

  @AfterEach
  void stopSidecars() {
    started.forEach(ApplicationContext::close);
  }

  private ApplicationContext member(String node) {
    ApplicationContext c = Sidecar.start(SidecarSettings.member(tmp.resolve(prefix.substring(1) + "/" + node),
        "http://127.0.0.1:" + origin.port() + "/", etcd.endpoints(), prefix, node));
    started.add(c);
    return c;
  }

  /** Mounts shared:v1 through the API, reads every byte, and returns the mount as the API then shows it. */
  private static JsonNode mountAndRead(ApplicationContext c) throws Exception {
    HttpResponse<String> made = HTTP.send(SidecarSettings.api(c, "/v1/mounts")
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"shared:v1\", \"prefetch\": \"off\"}")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(made.statusCode()).as(made.body()).isEqualTo(201);
    JsonNode m = JSON.readTree(made.body());
    assertThat(Files.readAllBytes(Path.of(m.get("mountpoint").asText(), "weights.bin"))).isEqualTo(weights);
    return JSON.readTree(HTTP.send(SidecarSettings.api(c, "/v1/mounts/" + m.get("id").asText())
        .build(), HttpResponse.BodyHandlers.ofString()).body());
  }

  private static ClusterMember of(ApplicationContext c) {
    return c.getBean(ClusterMember.class);
  }

  @Test
  void aSecondSidecarReadsAModelTheFirstHasCachedFromItWithAlmostNoOriginBytes() throws Exception {
    ApplicationContext a = member("a");
    ApplicationContext b = member("b");
    origin.resetCounters();
    JsonNode first = mountAndRead(a);
    assertThat(origin.bytesToClients()).as("the first read comes from the origin").isGreaterThan(weights.length);
    assertThat(first.get("fetched_bytes").get("peer").asLong()).isZero();
    // b has heard that a holds all of the model (a's registration follows its cache)
    await().atMost(Duration.ofSeconds(10)).until(() -> of(b).heldBy("a", digest) >= 1.0);

    origin.resetCounters();
    JsonNode second = mountAndRead(b);
    assertThat(second.get("fetched_bytes").get("peer").asLong()).isEqualTo(weights.length);
    assertThat(second.get("fetched_bytes").get("origin").asLong()).isZero();
    assertThat(origin.bytesToClients()).as("only the tag and the manifest from the origin")
        .isLessThan(weights.length / 20);
  }

  @Test
  void thePeerEndpointServesOnlyCallersWithTheClusterToken() throws Exception {
    ApplicationContext a = member("a");
    mountAndRead(a);
    String key = firstChunkKey(a);
    URI peer = URI.create("http://127.0.0.1:" + of(a).peerPort() + "/v1/chunks/" + key);
    assertThat(get(peer, null).statusCode()).as("no token").isEqualTo(401);
    assertThat(get(peer, "Bearer not-the-token").statusCode()).as("a wrong token").isEqualTo(401);
    assertThat(get(peer, "Bearer " + TOKEN.substring(1)).statusCode()).as("a prefix of it").isEqualTo(401);
    HttpResponse<byte[]> ok = get(peer, "Bearer " + TOKEN);
    assertThat(ok.statusCode()).isEqualTo(200);
    assertThat(ok.body()).hasSize(256 << 10);
    assertThat(get(URI.create("http://127.0.0.1:" + of(a).peerPort() + "/v1/chunks/" + "0".repeat(64)),
        "Bearer " + TOKEN).statusCode()).isEqualTo(404);
    assertThat(get(URI.create("http://127.0.0.1:" + of(a).peerPort() + "/v1/mounts"), "Bearer " + TOKEN)
        .statusCode()).as("nothing of the control API on the peer port").isEqualTo(404);
  }

  @Test
  void aCachedChunkThatRottedOnDiskIsNeverSentToAPeer() throws Exception {
    ApplicationContext a = member("a");
    mountAndRead(a);
    String key = firstChunkKey(a);
    Path file;
    try (var files = Files.walk(a.getBean(MountService.class).cache().directory())) {
      file = files.filter(f -> f.getFileName().toString().equals(key)).findFirst().orElseThrow();
    }
    byte[] bytes = Files.readAllBytes(file);
    bytes[1000] ^= 1;
    Files.write(file, bytes);
    URI peer = URI.create("http://127.0.0.1:" + of(a).peerPort() + "/v1/chunks/" + key);
    assertThat(get(peer, "Bearer " + TOKEN).statusCode()).as("a chunk whose bytes are wrong is not served")
        .isEqualTo(404);
    assertThat(file).as("and is deleted, to be fetched again").doesNotExist();
  }

  @Test
  void aPeerThatDiesMidTransferCostsOneFetchFromTheOriginNotAnError() throws Exception {
    AtomicInteger asked = new AtomicInteger();
    try (ServerSocket dying = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
      // a member that promises each chunk, sends half of it and drops the connection: a peer killed mid-transfer
      Thread.ofVirtual().start(() -> {
        while (!dying.isClosed()) {
          try (Socket s = dying.accept()) {
            asked.incrementAndGet();
            InputStream in = s.getInputStream();
            byte[] req = new byte[4096];
            in.read(req);
            OutputStream out = s.getOutputStream();
            out.write(("HTTP/1.1 200 OK\r\nContent-Length: " + (256 << 10) + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            out.write(new byte[128 << 10]);
            out.flush();
          } catch (Exception e) {
            // closed
          }
        }
      });
      try (Client client = Client.builder().endpoints(etcd.endpoints().split(",")).build()) {
        String ghost = "{\"node\": \"ghost\", \"peer_url\": \"http://127.0.0.1:" + dying.getLocalPort()
            + "\", \"held\": {\"" + digest + "\": 1.0}, \"fetching\": {\"" + digest + "\": true}}";
        client.getKVClient().put(ByteSequence.from(prefix + "/members/ghost", StandardCharsets.UTF_8),
            ByteSequence.from(ghost, StandardCharsets.UTF_8)).get(5, TimeUnit.SECONDS);
      }
      ApplicationContext c = member("c");
      await().atMost(Duration.ofSeconds(10)).until(() -> of(c).heldBy("ghost", digest) > 0);
      origin.resetCounters();
      JsonNode m = mountAndRead(c);
      assertThat(asked.get()).as("the dying peer was asked").isPositive();
      assertThat(m.get("fetched_bytes").get("peer").asLong()).isZero();
      assertThat(m.get("fetched_bytes").get("origin").asLong()).as("each chunk once from the origin")
          .isEqualTo(weights.length);
    }
  }

  @Test
  void sidecarsStartingTheSameModelAtOnceFetchItFromTheOriginAboutOnce() throws Exception {
    List<ApplicationContext> members = List.of(member("a"), member("b"), member("c"));
    List<Path> files = new ArrayList<>();
    for (ApplicationContext member : members) {
      HttpResponse<String> made = HTTP.send(SidecarSettings.api(member, "/v1/mounts")
          .header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString("{\"source\": \"shared:v1\", \"prefetch\": \"off\"}")).build(),
          HttpResponse.BodyHandlers.ofString());
      assertThat(made.statusCode()).as(made.body()).isEqualTo(201);
      files.add(Path.of(JSON.readTree(made.body()).get("mountpoint").asText(), "weights.bin"));
    }
    // each sees the other two fetching the model before the servers start reading
    await().atMost(Duration.ofSeconds(10)).until(() -> members.stream().allMatch(c -> fetching(c) == 3));
    origin.resetCounters();
    List<java.util.concurrent.Future<byte[]>> reads = new ArrayList<>();
    try (var pool = java.util.concurrent.Executors.newFixedThreadPool(3)) {
      for (Path f : files) {
        reads.add(pool.submit(() -> Files.readAllBytes(f)));
      }
      for (var r : reads) {
        assertThat(r.get(60, TimeUnit.SECONDS)).isEqualTo(weights);
      }
    }
    long fromOrigin = origin.bytesToClients();
    assertThat(fromOrigin).as("about one copy from the origin for three sidecars")
        .isLessThanOrEqualTo((long) (weights.length * 1.2));
  }

  /** How many members this one has heard are fetching the model: what it picks the chunks' owners among. */
  private static long fetching(ApplicationContext c) {
    return of(c).fetchers(digest);
  }

  private static String firstChunkKey(ApplicationContext c) throws Exception {
    Path cacheDir = c.getBean(MountService.class).cache().directory();
    try (var files = Files.walk(cacheDir)) {
      return files.filter(Files::isRegularFile).map(f -> f.getFileName().toString())
          .filter(n -> n.matches("[0-9a-f]{64}")).findFirst().orElseThrow();
    }
  }

  private static HttpResponse<byte[]> get(URI uri, String authorization) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5));
    if (authorization != null) {
      b.header("Authorization", authorization);
    }
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
  }
}
