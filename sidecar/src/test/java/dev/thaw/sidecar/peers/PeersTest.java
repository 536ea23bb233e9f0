package dev.thaw.sidecar.peers;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.store.ChunkCache;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.Hashes;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Peer sharing on its own: the owner rule over plain member data, and the peer endpoint over real HTTP on loopback. */
class PeersTest {
  static final String DIGEST = "sha256:" + "ab".repeat(32);
  static final String TOKEN = "a-cluster-token-for-peers";
  @TempDir Path tmp;

  /** A stand-in for the peers: records who was asked how, and answers for the URLs in {@code answering}. */
  static final class Asked implements ChunkOwners.PeerRead {
    final List<String> calls = new ArrayList<>();
    final Set<String> answering;

    Asked(String... answering) {
      this.answering = Set.of(answering);
    }

    @Override
    public boolean read(String url, ChunkRef chunk, ByteBuffer into, boolean asOwner) {
      calls.add(url + (asOwner ? " as owner" : ""));
      return answering.contains(url);
    }
  }

  private static Peer peer(String node, double held, boolean fetching) {
    return new Peer(node, "http://" + node, held == 0 ? Map.of() : Map.of(DIGEST, held),
        fetching ? Set.of(DIGEST) : Set.of());
  }

  private static boolean read(String self, List<Peer> members, ChunkRef chunk, Asked asked) {
    return new ChunkOwners(self, DIGEST, () -> members, asked).read(chunk, ByteBuffer.allocate(4));
  }

  /** A chunk that {@code owner} owns among {@code nodes}: its rendezvous score is the highest. */
  private static ChunkRef ownedBy(String owner, String... nodes) {
    return chunkWhere(key -> top(key, nodes).equals(owner));
  }

  /** The first of a run of chunk keys that {@code wanted} accepts. */
  private static ChunkRef chunkWhere(java.util.function.Predicate<String> wanted) {
    for (int i = 0; ; i++) {
      String key = Hashes.sha256Hex(("chunk " + i).getBytes(java.nio.charset.StandardCharsets.UTF_8));
      if (wanted.test(key)) {
        return new ChunkRef(key, key, 0, 0, 4, ChunkRef.objectKeyForHash(key), 0, null);
      }
    }
  }

  /** The node with the highest rendezvous score for {@code key}. */
  private static String top(String key, String... nodes) {
    return Stream.of(nodes).max(Comparator.comparingLong(n -> ChunkOwners.score(n, key))).orElseThrow();
  }

  @Test
  void aMemberHoldingTheWholeModelIsAskedFirstAsAHolder() {
    Asked asked = new Asked("http://full");
    assertThat(read("me", List.of(peer("part", 0.5, true), peer("full", 1.0, false)), ownedBy("part", "me", "part"),
        asked)).isTrue();
    assertThat(asked.calls).containsExactly("http://full");
  }

  @Test
  void withNoWholeHolderTheChunksOwnerAmongTheFetchersIsAskedAsItsOwner() {
    List<Peer> members = List.of(peer("me", 0.2, true), peer("a", 0.1, true), peer("b", 0.3, true),
        peer("c", 0, false));
    Asked asked = new Asked("http://b");
    assertThat(read("me", members, ownedBy("b", "me", "a", "b"), asked)).isTrue();
    assertThat(asked.calls).containsExactly("http://b as owner");
    // c fetches nothing, so it owns nothing, though it would win the hash
    ChunkRef chunk = chunkWhere(k -> top(k, "me", "a", "b", "c").equals("c") && top(k, "me", "a", "b").equals("a"));
    Asked again = new Asked("http://a");
    assertThat(read("me", members, chunk, again)).isTrue();
    assertThat(again.calls).containsExactly("http://a as owner");
  }

  @Test
  void whenThisNodeOwnsTheChunkNoPeerIsAskedAsOwnerAndPartialHoldersAreTriedBeforeTheOrigin() {
    List<Peer> members = List.of(peer("me", 0, true), peer("a", 0.5, true), peer("b", 0, true), peer("c", 0.9, false));
    Asked asked = new Asked();
    assertThat(read("me", members, ownedBy("me", "me", "a", "b"), asked)).as("none had it: the origin").isFalse();
    assertThat(asked.calls).containsExactly("http://a", "http://c");
  }

  @Test
  void anOwnerThatFailsIsNotAskedAgainAsAHolderAndTheOtherPartialHoldersAre() {
    List<Peer> members = List.of(peer("me", 0, true), peer("a", 0.5, true), peer("b", 0.5, true));
    Asked asked = new Asked("http://b");
    assertThat(read("me", members, ownedBy("a", "me", "a", "b"), asked)).isTrue();
    assertThat(asked.calls).containsExactly("http://a as owner", "http://b");
  }

  @Test
  void thisNodeMembersWithoutAPeerEndpointAndAnUnreachableClusterAreNeverAsked() {
    Asked asked = new Asked("http://me", "http://a");
    List<Peer> members = List.of(peer("me", 1.0, true), new Peer("a", null, Map.of(DIGEST, 1.0), Set.of(DIGEST)));
    ChunkRef chunk = ownedBy("a", "me", "a");
    assertThat(read("me", members, chunk, asked)).isFalse();
    assertThat(asked.calls).isEmpty();
    assertThat(read("me", List.of(), chunk, asked)).as("no members known: the origin").isFalse();
    assertThat(asked.calls).isEmpty();
  }

  @Test
  void aPeerServesVerifiedChunksToCallersWithTheTokenAndAnOwnerFetchesWhatItLacks() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    byte[] weights = new byte[600_000];
    new Random(7).nextBytes(weights);
    Files.write(model.resolve("weights.bin"), weights);
    String originUri = tmp.resolve("origin").toUri().toString();
    try (Origin origin = Origins.open(originUri);
        ChunkCache holderCache = ChunkCache.open(tmp.resolve("holder"), 1 << 30);
        ChunkCache ownerCache = ChunkCache.open(tmp.resolve("owner"), 1 << 30)) {
      String digest = new Pusher(origin, 256 << 10, 2, PushProgress.NONE).push(model, ModelName.parse("p:v1")).digest();
      Manifest manifest = new ModelStore(origin).load(digest);
      List<ChunkRef> chunks = manifest.files().getFirst().chunks();
      try (ModelReader filled = ModelReader.open(manifest, origin, holderCache, ReaderOptions.DEFAULT);
          ModelReader owning = ModelReader.open(manifest, origin, ownerCache, ReaderOptions.DEFAULT)) {
        filled.fillAll().get(30, TimeUnit.SECONDS);
        OwnerFetch holderFetches = (key, timeout) -> {
          throw new AssertionError("a holder asked as a holder fetches nothing");
        };
        OwnerFetch ownerFetches = (key, timeout) -> {
          var c = owning.chunk(key);
          if (c.isEmpty()) {
            return false;
          }
          owning.fetchNow(c.get()).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
          return true;
        };
        try (PeerServer holder = new PeerServer("127.0.0.1", 0, TOKEN, holderCache, holderFetches,
                Duration.ofSeconds(5));
            PeerServer owner = new PeerServer("127.0.0.1", 0, TOKEN, ownerCache, ownerFetches, Duration.ofSeconds(5))) {
          String holderUrl = "http://127.0.0.1:" + holder.port();
          String ownerUrl = "http://127.0.0.1:" + owner.port();
          PeerClient client = new PeerClient(TOKEN, Duration.ofSeconds(5));
          ByteBuffer into = ByteBuffer.allocate(256 << 10);
          for (ChunkRef c : chunks) {
            assertThat(client.readFrom(holderUrl, c, into, false)).as(c.key()).isTrue();
            assertThat(Hashes.sha256Hex(into.flip())).as("the bytes are the chunk's").isEqualTo(c.hash());
          }
          ChunkRef first = chunks.getFirst();
          assertThat(new PeerClient("not-the-" + TOKEN, Duration.ofSeconds(5)).readFrom(holderUrl, first, into, false))
              .as("a wrong token gets nothing").isFalse();
          HttpResponse<byte[]> noToken = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
              URI.create(holderUrl + "/v1/chunks/" + first.key())).build(), HttpResponse.BodyHandlers.ofByteArray());
          assertThat(noToken.statusCode()).isEqualTo(401);
          assertThat(client.readFrom(ownerUrl, first, into, false)).as("asked as a holder: it has none").isFalse();
          assertThat(ownerCache.contains(first.key())).isFalse();
          assertThat(client.readFrom(ownerUrl, first, into, true)).as("asked as the owner: it fetches").isTrue();
          assertThat(Hashes.sha256Hex(into.flip())).isEqualTo(first.hash());
          assertThat(ownerCache.contains(first.key())).as("and keeps it for the others").isTrue();
        }
      }
    }
  }
}
