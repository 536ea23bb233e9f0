package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.assertModelReadsBack;
import static dev.thaw.store.OriginTestSupport.generateModel;
import static dev.thaw.store.OriginTestSupport.randomBytes;
import static dev.thaw.store.OriginTestSupport.readFully;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A cache on disk can rot, be truncated or have its files mixed up after its chunks were verified on arrival: a
 * reader checks each cached chunk the first time it uses it, and fetches a wrong one again instead of serving it.
 */
class CachedChunkIntegrityTest {
  private static final ModelName NAME = ModelName.parse("rot:v1");

  @TempDir Path tmp;
  private Path model;
  private Path cacheDir;
  private Manifest manifest;
  private ChunkRef victim;
  private ChunkRef other;

  @BeforeEach
  void pushAModelAndCacheAllOfIt() throws Exception {
    model = generateModel(tmp.resolve("model"), 31);
    cacheDir = tmp.resolve("cache");
    try (Origin origin = Origins.open(tmp.resolve("origin").toString())) {
      new Pusher(origin, CHUNK, 2, PushProgress.NONE).push(model, NAME);
      manifest = new ModelStore(origin).resolve(NAME);
      try (ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20);
          ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
        assertModelReadsBack(reader, model);
      }
    }
    List<ChunkRef> chunks = ((FileEntry) manifest.entry("weights/shard-00001.bin")).chunks();
    victim = chunks.get(2);
    other = chunks.get(3);
  }

  private Path cached(ChunkRef c) {
    return cacheDir.resolve("chunks").resolve(c.key().substring(0, 2)).resolve(c.key());
  }

  /** Reads the whole model back through a new reader over the damaged cache; returns the reader's counters. */
  private long[] readBackThroughANewReader() throws Exception {
    try (Origin origin = Origins.open(tmp.resolve("origin").toString());
        ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
      assertModelReadsBack(reader, model);
      reader.close(); // a read may be served from a chunk's first blocks: closing lets the fetches under way finish
      return new long[] {reader.corruptCachedChunks(), reader.chunksFetched(), cache.discarded()};
    }
  }

  @Test
  void aCachedChunkWithOneFlippedByteIsDeletedFetchedAgainAndNeverServed() throws Exception {
    byte[] bytes = Files.readAllBytes(cached(victim));
    bytes[1000] ^= 0x01;
    Files.write(cached(victim), bytes);

    long[] counters = readBackThroughANewReader();
    assertThat(counters[0]).as("corrupt cached chunks found").isEqualTo(1);
    assertThat(counters[1]).as("chunks fetched: only the corrupt one").isEqualTo(1);
    assertThat(counters[2]).as("chunks the cache discarded").isEqualTo(1);
    assertThat(Hashes.sha256Hex(Files.readAllBytes(cached(victim)))).as("the cache holds the right bytes again")
        .isEqualTo(victim.hash());
  }

  @Test
  void aTruncatedCachedChunkIsFetchedAgainInsteadOfFailingEveryLaterRead() throws Exception {
    try (var ch = java.nio.channels.FileChannel.open(cached(victim), java.nio.file.StandardOpenOption.WRITE)) {
      ch.truncate(victim.length() / 2);
    }
    assertThat(readBackThroughANewReader()[0]).isEqualTo(1);
    assertThat(readBackThroughANewReader()[0]).as("repaired for good: the next reader finds nothing wrong").isZero();
  }

  @Test
  void anotherChunksFileSwappedInIsNeverServed() throws Exception {
    Files.copy(cached(other), cached(victim), StandardCopyOption.REPLACE_EXISTING);
    assertThat(readBackThroughANewReader()[0]).isEqualTo(1);
  }

  @Test
  void eachCachedChunkIsHashedAtMostOncePerReaderAndChunksItFetchedItselfNotAtAll() throws Exception {
    Set<String> keys = new HashSet<>();
    manifest.files().forEach(f -> f.chunks().forEach(c -> keys.add(c.key())));
    try (Origin origin = Origins.open(tmp.resolve("origin").toString());
        ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
      for (int pass = 0; pass < 3; pass++) {
        for (FileEntry f : manifest.files()) {
          readFully(reader, f.path(), 1000); // many reads per chunk
        }
      }
      assertThat(reader.cacheChecks()).isEqualTo(keys.size());
    }
    try (Origin origin = Origins.open(tmp.resolve("origin").toString());
        ChunkCache cache = ChunkCache.open(tmp.resolve("cold-cache"), 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
      assertModelReadsBack(reader, model);
      assertModelReadsBack(reader, model);
      reader.close();
      assertThat(reader.chunksFetched()).isEqualTo(keys.size());
      assertThat(reader.cacheChecks()).as("chunks this reader fetched were hashed on arrival").isZero();
    }
  }

  @Test
  void aRottedDirectModeChunkIsCheckedAgainstItsRecordedHashAndFetchedAgain() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("plain"));
    byte[] content = randomBytes(5, 3 * CHUNK + 10);
    Files.write(dir.resolve("model.bin"), content);
    Path directCache = tmp.resolve("direct-cache");
    try (Origin origin = Origins.open(dir.toUri().toString())) {
      Manifest direct = DirectListing.list(origin, CHUNK);
      ChunkRef second = ((FileEntry) direct.entry("model.bin")).chunks().get(1);
      try (ChunkCache cache = ChunkCache.open(directCache, 64 << 20);
          ModelReader reader = ModelReader.open(direct, origin, cache, ReaderOptions.DEFAULT)) {
        assertThat(readFully(reader, "model.bin", 4096)).isEqualTo(content);
      }
      Path file = directCache.resolve("chunks").resolve(second.key().substring(0, 2)).resolve(second.key());
      byte[] bytes = Files.readAllBytes(file);
      bytes[7] ^= 0x40;
      Files.write(file, bytes);
      try (ChunkCache cache = ChunkCache.open(directCache, 64 << 20);
          ModelReader reader = ModelReader.open(direct, origin, cache, ReaderOptions.DEFAULT)) {
        assertThat(readFully(reader, "model.bin", 4096)).isEqualTo(content);
        assertThat(reader.corruptCachedChunks()).isEqualTo(1);
      }
    }
  }

  @Test
  void aReadHandingCachedChunksOverAsFilesHandsOverOnlyVerifiedOnesAndCopiesWhatItFetchedAgain() throws Exception {
    byte[] bytes = Files.readAllBytes(cached(victim));
    bytes[1000] ^= 0x01;
    Files.write(cached(victim), bytes);
    FileEntry shard = (FileEntry) manifest.entry("weights/shard-00001.bin");
    byte[] expected = Files.readAllBytes(model.resolve(shard.path()));
    long from = victim.fileOffset() - 100; // the end of the chunk before it, the rotted one, the start of the next
    int length = victim.length() + 200;

    try (Origin origin = Origins.open(tmp.resolve("origin").toString());
        ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT);
        ModelReader.ModelFile file = reader.open(shard.path())) {
      java.nio.ByteBuffer dst = java.nio.ByteBuffer.allocate(length);
      java.util.List<String> handedOver = new java.util.ArrayList<>();
      int n = file.read(from, dst, (chunkFile, position, len, at) -> {
        byte[] region = new byte[len];
        try (var ch = java.nio.channels.FileChannel.open(chunkFile)) {
          ch.read(java.nio.ByteBuffer.wrap(region), position);
        }
        System.arraycopy(region, 0, dst.array(), at, len); // what a FUSE reply would send from the file
        handedOver.add(chunkFile.getFileName().toString());
      });

      assertThat(n).isEqualTo(length);
      assertThat(dst.position()).as("the room of handed-over bytes is skipped").isEqualTo(length);
      assertThat(dst.array()).isEqualTo(java.util.Arrays.copyOfRange(expected, (int) from, (int) from + length));
      // the flipped byte would show in dst had the rotted file been handed over before it was fetched again
      assertThat(handedOver).as("a cached neighbour goes over as its file").contains(other.key());
      assertThat(reader.corruptCachedChunks()).isEqualTo(1);
    }
    assertThat(Hashes.sha256Hex(Files.readAllBytes(cached(victim)))).isEqualTo(victim.hash());
  }
}
