package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.FAST_RETRY;
import static dev.thaw.store.OriginTestSupport.assertModelReadsBack;
import static dev.thaw.store.OriginTestSupport.causeOf;
import static dev.thaw.store.OriginTestSupport.chunkFile;
import static dev.thaw.store.OriginTestSupport.generateModel;
import static dev.thaw.store.OriginTestSupport.readFully;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.thaw.store.FaultyHttpServer.Fault;
import dev.thaw.store.FaultyHttpServer.Rule;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Chunks whose bytes do not match their hash: corrupt at the origin is an error, corrupt in transit is refetched. */
class CorruptChunkTest {
  private static final ModelName NAME = ModelName.parse("corrupt:v1");

  @TempDir Path tmp;
  private Path model;
  private Path originDir;
  private ChunkRef victim;

  @BeforeEach
  void pushAModel() throws Exception {
    model = generateModel(tmp.resolve("model"), 23);
    originDir = tmp.resolve("origin");
    try (Origin files = Origins.open(originDir.toString())) {
      new Pusher(files, CHUNK, 2, PushProgress.NONE).push(model, NAME);
      Manifest manifest = new ModelStore(files).resolve(NAME);
      victim = ((FileEntry) manifest.entry("weights/shard-00001.bin")).chunks().get(2);
    }
  }

  @ParameterizedTest(name = "over {0}")
  @ValueSource(strings = {"file", "http"})
  void aChunkCorruptAtTheOriginFailsNamingTheChunkAndTheOriginUrl(String scheme) throws Exception {
    Path stored = chunkFile(originDir, victim.hash());
    byte[] bytes = Files.readAllBytes(stored);
    bytes[bytes.length / 3] ^= 0x01;
    Files.write(stored, bytes);

    try (FaultyHttpServer server = new FaultyHttpServer(originDir);
        Origin origin = Origins.open(scheme.equals("http") ? server.url() : originDir.toString(), FAST_RETRY, 8);
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
        ModelReader reader = ModelReader.open(new ModelStore(origin).resolve(NAME), origin, cache, ReaderOptions.DEFAULT)) {
      Throwable failure = catchThrowable(() -> readFully(reader, "weights/shard-00001.bin", CHUNK));
      ChunkCorruptException corrupt = causeOf(failure, ChunkCorruptException.class);
      assertThat(corrupt).as("cause of %s", failure).isNotNull();
      assertThat(corrupt.getMessage())
          .contains(victim.hash())
          .contains(origin.urlOf(victim.objectKey()))
          .contains("two fetches");
      assertThat(failure.getMessage()).contains(victim.hash()).contains(origin.urlOf(victim.objectKey()));
      assertThat(cache.contains(victim.key())).as("a corrupt chunk is never cached").isFalse();
      assertThat(reader.corruptRefetches()).isGreaterThanOrEqualTo(2);

      // The other chunks of the file are unharmed and still read correctly.
      byte[] expected = Files.readAllBytes(model.resolve("weights/shard-00001.bin"));
      ByteBuffer first = ByteBuffer.allocate(CHUNK);
      reader.open("weights/shard-00001.bin").read(0, first);
      assertThat(first.array()).isEqualTo(java.util.Arrays.copyOf(expected, CHUNK));
    }
  }

  @Test
  void aChunkCorruptedInTransitOnceIsFetchedAgainAndReadsCorrectly() throws Exception {
    try (FaultyHttpServer server = new FaultyHttpServer(originDir);
        Origin origin = Origins.open(server.url(), FAST_RETRY, 8);
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20)) {
      Manifest manifest = new ModelStore(origin).resolve(NAME);
      server.inject(Rule.of(Fault.CORRUPT, 1).onPathsContaining(victim.hash()).times(1));
      try (ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
        assertModelReadsBack(reader, model);
        assertThat(reader.corruptRefetches()).isEqualTo(1);
      }
      assertThat(server.faultsInjected()).isEqualTo(1);
      assertThat(cache.contains(victim.key())).isTrue();
    }
  }
}
