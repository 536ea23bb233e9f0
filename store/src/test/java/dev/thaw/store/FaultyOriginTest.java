package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.FAST_RETRY;
import static dev.thaw.store.OriginTestSupport.assertModelReadsBack;
import static dev.thaw.store.OriginTestSupport.causeOf;
import static dev.thaw.store.OriginTestSupport.generateModel;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.thaw.store.FaultyHttpServer.Fault;
import dev.thaw.store.FaultyHttpServer.Rule;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** An http:// origin that fails: transient faults are retried with backoff, permanent ones fail with a clear error. */
class FaultyOriginTest {
  private static final ModelName NAME = ModelName.parse("faulty/model:v1");

  @TempDir Path tmp;
  private Path model;
  private Pusher.Result pushed;
  private FaultyHttpServer server;
  private Origin origin;

  @BeforeEach
  void pushAModelAndServeIt() throws Exception {
    model = generateModel(tmp.resolve("model"), 17);
    Path originDir = tmp.resolve("origin");
    try (Origin files = Origins.open(originDir.toString())) {
      pushed = new Pusher(files, CHUNK, 2, PushProgress.NONE).push(model, NAME);
    }
    server = new FaultyHttpServer(originDir);
    origin = Origins.open(server.url(), FAST_RETRY, 8);
  }

  @AfterEach
  void stop() throws Exception {
    origin.close();
    server.close();
  }

  static Stream<Arguments> intermittentFaults() {
    return Stream.of(
        Arguments.of("HTTP 500 on every 3rd request", Rule.status(500, 3)),
        Arguments.of("HTTP 503 on every 2nd request", Rule.status(503, 2)),
        Arguments.of("HTTP 429 on every 3rd request", Rule.status(429, 3)),
        Arguments.of("a truncated body on every 3rd request", Rule.of(Fault.TRUNCATE, 3)),
        Arguments.of("a reset connection on every 3rd request", Rule.of(Fault.RESET, 3)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("intermittentFaults")
  void intermittentFaultsAreRetriedAndTheModelReadsBackExactly(String description, Rule rule) throws Exception {
    server.inject(rule);
    Manifest manifest = new ModelStore(origin).resolve(NAME);
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT.withParallelism(4))) {
      assertModelReadsBack(reader, model);
      reader.close(); // a read may be served from a chunk's first blocks: closing lets the fetches under way finish
      assertThat(reader.chunksFetched()).isEqualTo(pushed.chunks());
      assertThat(reader.corruptRefetches()).isZero();
    }
    assertThat(server.faultsInjected()).as("faults injected (%s)", description).isPositive();
  }

  @Test
  void aReadIsServedAsSoonAsItsBlockHasArrivedAndMatchedWhileTheRestOfItsChunkIsStillOnTheWire() throws Exception {
    Manifest manifest = new ModelStore(origin).resolve(NAME);
    assertThat(manifest.version()).as("a push lists block hashes").isEqualTo(2);
    ChunkRef first = ((FileEntry) manifest.entry("weights/shard-00001.bin")).chunks().getFirst();
    assertThat(first.blocks().count()).isEqualTo(2);
    // The server sends the chunk's first half, its first block, then nothing more.
    server.inject(Rule.of(Fault.STALL, 1).onPathsContaining(first.hash()).times(1));
    byte[] expected = java.nio.file.Files.readAllBytes(model.resolve("weights/shard-00001.bin"));
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache,
            new ReaderOptions(2, 0, false, java.time.Duration.ofSeconds(1)));
        ModelReader.ModelFile file = reader.open("weights/shard-00001.bin")) {
      ByteBuffer head = ByteBuffer.allocate(4096);
      assertThat(file.read(0, head)).isEqualTo(4096);
      assertThat(head.array()).isEqualTo(java.util.Arrays.copyOf(expected, 4096));

      ByteBuffer secondBlock = ByteBuffer.allocate(4096);
      Throwable late = catchThrowable(() -> file.read(first.blocks().blockSize() + 100, secondBlock));
      assertThat(late).as("the second block has not arrived").isInstanceOf(java.io.InterruptedIOException.class)
          .hasMessageContaining("timed out");
      assertThat(secondBlock.position()).as("nothing of it is served").isZero();
      assertThat(cache.contains(first.key())).isFalse();
    }
  }

  @Test
  void aRangeReadRetriedAfterATruncatedBodyHoldsOnlyTheRightBytes() throws Exception {
    server.inject(Rule.of(Fault.TRUNCATE, 1).times(2));
    String key = "manifests/" + pushed.digest().substring("sha256:".length()) + ".json";
    byte[] whole = origin.readAll(key);
    ByteBuffer dst = ByteBuffer.allocate(whole.length - 10);
    origin.read(key, 10, dst, null);
    assertThat(dst.array()).isEqualTo(java.util.Arrays.copyOfRange(whole, 10, whole.length));
    assertThat(server.faultsInjected()).isEqualTo(2);
  }

  @Test
  void aPermanent503FailsAfterMaxAttemptsNamingTheUrlTheStatusAndTheAttempts() throws Exception {
    String key = firstChunkKey();
    server.inject(Rule.status(503, 1));
    OriginException e = readFails(key);
    assertThat(e.status()).isEqualTo(503);
    assertThat(e.retryable()).isTrue();
    assertThat(e.attempts()).isEqualTo(FAST_RETRY.maxAttempts());
    assertThat(e.url()).isEqualTo(server.url() + key);
    assertThat(e.getMessage())
        .contains(server.url() + key)
        .contains("HTTP 503")
        .contains("after " + FAST_RETRY.maxAttempts() + " attempts");
    assertThat(e.getMessage().split("HTTP 503", -1)).as("the status is named once: %s", e.getMessage()).hasSize(2);
    assertThat(server.requests()).isEqualTo(FAST_RETRY.maxAttempts());
  }

  @Test
  void aPermanent503ReachesAReaderAsAnErrorNamingTheUrlAndAttempts() throws Exception {
    Manifest manifest = new ModelStore(origin).resolve(NAME);
    server.inject(Rule.status(503, 1));
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, new ReaderOptions(2, 0, false))) {
      Throwable failure = catchThrowable(() -> reader.open("weights/shard-00001.bin").read(0, ByteBuffer.allocate(100)));
      OriginException e = causeOf(failure, OriginException.class);
      assertThat(e).as("cause of %s", failure).isNotNull();
      assertThat(e.attempts()).isEqualTo(FAST_RETRY.maxAttempts());
      assertThat(failure.getMessage()).contains(server.url() + "chunks/").contains("HTTP 503")
          .contains("after " + FAST_RETRY.maxAttempts() + " attempts");
    }
  }

  @Test
  void aPermanent429IsRetriedUpToMaxAttemptsToo() throws Exception {
    String key = firstChunkKey();
    server.inject(Rule.status(429, 1));
    OriginException e = readFails(key);
    assertThat(e.status()).isEqualTo(429);
    assertThat(e.attempts()).isEqualTo(FAST_RETRY.maxAttempts());
    assertThat(server.requests()).isEqualTo(FAST_RETRY.maxAttempts());
  }

  @Test
  void a403FailsAtOnceWithoutRetries() throws Exception {
    String key = firstChunkKey();
    server.inject(Rule.status(403, 1));
    OriginException e = readFails(key);
    assertThat(e.status()).isEqualTo(403);
    assertThat(e.retryable()).isFalse();
    assertThat(e.attempts()).isEqualTo(1);
    assertThat(e.getMessage()).contains(server.url() + key).contains("HTTP 403").doesNotContain("attempts");
    assertThat(server.requests()).isEqualTo(1);
  }

  @Test
  void a404FailsAtOnceWithoutRetries() throws Exception {
    String key = "chunks/00/" + "0".repeat(64);
    OriginException e = readFails(key);
    assertThat(e.isNotFound()).isTrue();
    assertThat(e.attempts()).isEqualTo(1);
    assertThat(e.getMessage()).contains(server.url() + key).contains("HTTP 404");
    assertThat(server.requests()).isEqualTo(1);
  }

  @Test
  void connectionsResetOnEveryRequestFailAfterMaxAttemptsNamingTheUrl() throws Exception {
    String key = firstChunkKey();
    server.inject(Rule.of(Fault.RESET, 1));
    OriginException e = readFails(key);
    assertThat(e.status()).isEqualTo(OriginException.NO_STATUS);
    assertThat(e.attempts()).isEqualTo(FAST_RETRY.maxAttempts());
    assertThat(e.getMessage()).contains(server.url() + key).contains("after " + FAST_RETRY.maxAttempts() + " attempts");
  }

  @Test
  void bodiesTruncatedOnEveryRequestFailAfterMaxAttemptsAndNeverAsAShortRead() throws Exception {
    String key = firstChunkKey();
    server.inject(Rule.of(Fault.TRUNCATE, 1));
    OriginException e = readFails(key);
    assertThat(e.retryable()).isTrue();
    assertThat(e.attempts()).isEqualTo(FAST_RETRY.maxAttempts());
    assertThat(e.getMessage()).contains(server.url() + key).contains("after " + FAST_RETRY.maxAttempts() + " attempts");
    assertThat(server.requests()).isEqualTo(FAST_RETRY.maxAttempts());
  }

  private String firstChunkKey() throws Exception {
    Manifest manifest = new ModelStore(origin).resolve(NAME);
    String key = ((FileEntry) manifest.entry("weights/shard-00001.bin")).chunks().getFirst().objectKey();
    server.resetCounters();
    return key;
  }

  private OriginException readFails(String key) {
    Throwable t = catchThrowable(() -> origin.read(key, 0, ByteBuffer.allocate(CHUNK), null));
    assertThat(t).isInstanceOf(OriginException.class);
    return (OriginException) t;
  }
}
