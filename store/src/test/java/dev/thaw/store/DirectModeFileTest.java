package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.assertModelReadsBack;
import static dev.thaw.store.OriginTestSupport.causeOf;
import static dev.thaw.store.OriginTestSupport.generateModel;
import static dev.thaw.store.OriginTestSupport.randomBytes;
import static dev.thaw.store.OriginTestSupport.readFully;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Direct mode over a file:// directory of ordinary files: no push, chunks are byte ranges of the files. */
class DirectModeFileTest {
  @TempDir Path tmp;

  @Test
  void aDirectoryOfOrdinaryFilesReadsBackExactly() throws Exception {
    Path dir = generateModel(tmp.resolve("plain"), 8);
    try (Origin origin = Origins.open(dir.toUri().toString());
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20)) {
      Manifest manifest = DirectListing.list(origin, CHUNK);
      assertThat(manifest.isDirect()).isTrue();
      assertThat(manifest.files()).extracting(FileEntry::path)
          .containsExactlyInAnyOrder("config.json", "empty.txt", "weights/shard-00001.bin", "weights/shard-00002.bin");
      try (ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
        assertModelReadsBack(reader, dir);
      }
    }
  }

  @Test
  void aFileModifiedAfterListingFailsAsChangedAndNeverMixesBytes() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("plain"));
    Path file = dir.resolve("model.bin");
    byte[] original = randomBytes(1, 4 * CHUNK);
    Files.write(file, original);
    try (Origin origin = Origins.open(dir.toUri().toString());
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20)) {
      Manifest manifest = DirectListing.list(origin, CHUNK);
      try (ModelReader reader = ModelReader.open(manifest, origin, cache, new ReaderOptions(2, 0, false));
          ModelReader.ModelFile f = reader.open("model.bin")) {
        ByteBuffer first = ByteBuffer.allocate(CHUNK);
        f.read(0, first);
        assertThat(first.array()).isEqualTo(Arrays.copyOf(original, CHUNK));

        FileTime listed = Files.getLastModifiedTime(file);
        Files.write(file, randomBytes(2, 4 * CHUNK)); // same size, new bytes
        Files.setLastModifiedTime(file, FileTime.fromMillis(listed.toMillis() + 2000));

        Throwable failure = catchThrowable(() -> f.read(CHUNK, ByteBuffer.allocate(CHUNK)));
        OriginException changed = causeOf(failure, OriginException.class);
        assertThat(changed).as("cause of %s", failure).isNotNull();
        assertThat(changed.isChanged()).isTrue();
        assertThat(changed.attempts()).isEqualTo(1);
        assertThat(failure.getMessage()).contains(dir.toUri() + "model.bin").contains("changed");
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"rewritten in place", "replaced by a rename"})
  void aSameSizeRewriteThatPutsBackTheOldMtimeIsStillSeenAsAChange(String how) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("plain"));
    Path file = dir.resolve("model.bin");
    byte[] original = randomBytes(1, 4 * CHUNK);
    Files.write(file, original);
    try (Origin origin = Origins.open(dir.toUri().toString());
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20)) {
      Manifest manifest = DirectListing.list(origin, CHUNK);
      try (ModelReader reader = ModelReader.open(manifest, origin, cache, new ReaderOptions(2, 0, false));
          ModelReader.ModelFile f = reader.open("model.bin")) {
        ByteBuffer first = ByteBuffer.allocate(CHUNK);
        f.read(0, first);
        assertThat(first.array()).isEqualTo(Arrays.copyOf(original, CHUNK));

        FileTime listed = Files.getLastModifiedTime(file);
        if (how.equals("rewritten in place")) {
          Files.write(file, randomBytes(2, 4 * CHUNK));
          Files.setLastModifiedTime(file, listed); // what `touch -r` or a restoring copy does
        } else {
          Path next = dir.resolve(".next");
          Files.write(next, randomBytes(2, 4 * CHUNK));
          Files.setLastModifiedTime(next, listed);
          Files.move(next, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
        assertThat(Files.getLastModifiedTime(file)).isEqualTo(listed);
        assertThat(Files.size(file)).isEqualTo(original.length);

        Throwable failure = catchThrowable(() -> f.read(CHUNK, ByteBuffer.allocate(CHUNK)));
        OriginException changed = causeOf(failure, OriginException.class);
        assertThat(changed).as("cause of %s", failure).isNotNull();
        assertThat(changed.isChanged()).isTrue();
        assertThat(failure.getMessage()).contains(dir.toUri() + "model.bin").contains("changed");
      }
    }
  }

  @Test
  void theHashIsRecordedOnFirstReadAndAnEvictedChunkOfAnUnchangedFileIsServedAgain() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("plain"));
    byte[] content = randomBytes(3, 3 * CHUNK + 100);
    Files.write(dir.resolve("model.bin"), content);
    Path cacheDir = tmp.resolve("cache");
    try (Origin origin = Origins.open(dir.toUri().toString())) {
      Manifest manifest = DirectListing.list(origin, CHUNK);
      ChunkRef second = ((FileEntry) manifest.entry("model.bin")).chunks().get(1);
      byte[] secondBytes = Arrays.copyOfRange(content, CHUNK, 2 * CHUNK);

      try (ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20)) {
        assertThat(cache.recordedHash(second.key())).isNull();
        try (ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
          assertThat(readFully(reader, "model.bin", 4096)).isEqualTo(content);
        }
        assertThat(cache.recordedHash(second.key())).isEqualTo(Hashes.sha256Hex(ByteBuffer.wrap(secondBytes)));
      }

      // Remove the chunk from the cache while no process holds it: the recorded hash survives a restart.
      try (var files = Files.walk(cacheDir.resolve("chunks"))) {
        for (Path p : files.filter(p -> p.getFileName().toString().equals(second.key())).toList()) {
          Files.delete(p);
        }
      }
      try (ChunkCache cache = ChunkCache.open(cacheDir, 64 << 20);
          ModelReader reader = ModelReader.open(manifest, origin, cache, new ReaderOptions(2, 0, false))) {
        assertThat(cache.contains(second.key())).isFalse();
        assertThat(cache.recordedHash(second.key())).isEqualTo(Hashes.sha256Hex(ByteBuffer.wrap(secondBytes)));
        ByteBuffer dst = ByteBuffer.allocate(CHUNK);
        assertThat(reader.open("model.bin").read(CHUNK, dst)).isEqualTo(CHUNK);
        assertThat(dst.array()).isEqualTo(secondBytes);
        assertThat(reader.chunksFetched()).as("only the removed chunk is fetched").isEqualTo(1);
        assertThat(reader.corruptRefetches()).isZero();
      }

      // Evicted under a small limit (two chunks), every chunk is fetched again and verified against its hash.
      try (ChunkCache small = ChunkCache.open(tmp.resolve("small-cache"), 2L * CHUNK);
          ModelReader reader = ModelReader.open(manifest, origin, small, new ReaderOptions(1, 0, false))) {
        assertThat(readFully(reader, "model.bin", 4096)).isEqualTo(content);
        assertThat(small.evictions()).isPositive();
        assertThat(readFully(reader, "model.bin", 4096)).isEqualTo(content);
        assertThat(reader.corruptRefetches()).isZero();
      }
    }
  }
}
