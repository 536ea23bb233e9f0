package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;

/** Shared helpers for the origin tests: generated models, reading a model back, finding causes. */
final class OriginTestSupport {
  /** Small chunks, so a few hundred KiB make many chunks and many range requests. */
  static final int CHUNK = 64 << 10;
  /** Retries fast enough for tests: 4 attempts, waits of a few milliseconds. */
  static final RetryPolicy FAST_RETRY = new RetryPolicy(4, Duration.ofMillis(2), Duration.ofMillis(10));

  private OriginTestSupport() {}

  static byte[] randomBytes(long seed, int n) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  /** A small model shaped like a real one: a config, shards of several chunks (one not chunk-aligned), an empty file. */
  static Path generateModel(Path dir, long seed) throws IOException {
    Files.createDirectories(dir.resolve("weights"));
    Files.writeString(dir.resolve("config.json"), "{\"hidden\": 64, \"seed\": " + seed + "}\n");
    Files.write(dir.resolve("weights/shard-00001.bin"), randomBytes(seed, 5 * CHUNK));
    Files.write(dir.resolve("weights/shard-00002.bin"), randomBytes(seed + 1, 3 * CHUNK + 12345));
    Files.write(dir.resolve("empty.txt"), new byte[0]);
    return dir;
  }

  /** Reads a whole file through the reader, in reads of {@code step} bytes. */
  static byte[] readFully(ModelReader reader, String path, int step) throws IOException {
    try (ModelReader.ModelFile f = reader.open(path)) {
      byte[] out = new byte[(int) f.size()];
      ByteBuffer buf = ByteBuffer.wrap(out);
      long offset = 0;
      while (offset < out.length) {
        buf.limit((int) Math.min(out.length, offset + step));
        int n = f.read(offset, buf);
        assertThat(n).as("read of %s at %d", path, offset).isPositive();
        offset += n;
      }
      return out;
    }
  }

  /** Asserts every regular file of the manifest reads back through the reader exactly as in {@code dir}. */
  static void assertModelReadsBack(ModelReader reader, Path dir) throws IOException {
    for (FileEntry f : reader.manifest().files()) {
      byte[] expected = Files.readAllBytes(dir.resolve(f.path()));
      assertThat(readFully(reader, f.path(), 100_000)).as("bytes of %s", f.path()).isEqualTo(expected);
    }
  }

  /** The first throwable of type {@code type} in the cause chain of {@code t}, or null. */
  static <T extends Throwable> T causeOf(Throwable t, Class<T> type) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (type.isInstance(c)) {
        return type.cast(c);
      }
    }
    return null;
  }

  static Path chunkFile(Path originDir, String hash) {
    return originDir.resolve(ChunkRef.objectKeyForHash(hash));
  }
}
