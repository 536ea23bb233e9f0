package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/** Any sequence of reads at any offsets and lengths returns exactly the file's bytes. */
class ReaderPropertiesTest {
  private static final int CHUNK = 4096;
  private static Path root;
  private static byte[] content;
  private static Origin origin;
  private static Manifest manifest;

  @BeforeContainer
  static void pushOneFile() throws IOException {
    root = Files.createTempDirectory("thaw-reader-props");
    Path model = Files.createDirectories(root.resolve("model"));
    content = OriginTestSupport.randomBytes(99, 10 * CHUNK + 1234);
    Files.write(model.resolve("weights.bin"), content);
    origin = Origins.open(root.resolve("origin").toString());
    new Pusher(origin, CHUNK, 2, PushProgress.NONE).push(model, ModelName.parse("p"));
    manifest = new ModelStore(origin).resolve(ModelName.parse("p"));
  }

  @AfterContainer
  static void cleanUp() throws IOException {
    try (var s = Files.walk(root)) {
      s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  @Provide
  Arbitrary<List<Tuple.Tuple2<Integer, Integer>>> reads() {
    Arbitrary<Integer> offsets = Arbitraries.integers().between(0, content.length + 100);
    Arbitrary<Integer> lengths = Arbitraries.integers().between(0, 3 * CHUNK);
    return net.jqwik.api.Combinators.combine(offsets, lengths).as(Tuple::of).list().ofMinSize(1).ofMaxSize(20);
  }

  @Property(tries = 60)
  void readsReturnExactlyTheFilesBytes(@ForAll("reads") List<Tuple.Tuple2<Integer, Integer>> reads,
      @ForAll boolean smallCache) throws IOException {
    Path cacheDir = Files.createTempDirectory(root, "cache");
    // A small cache forces evictions and refetches between reads.
    try (ChunkCache cache = ChunkCache.open(cacheDir, smallCache ? 2L * CHUNK : 1L << 30);
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT.withParallelism(2))) {
      ModelReader.ModelFile file = reader.open("weights.bin");
      for (Tuple.Tuple2<Integer, Integer> r : reads) {
        int offset = r.get1();
        int length = r.get2();
        ByteBuffer buf = ByteBuffer.allocate(length);
        int n = file.read(offset, buf);
        if (offset >= content.length) {
          assertThat(n).isEqualTo(length == 0 ? 0 : -1);
        } else {
          int expected = Math.min(length, content.length - offset);
          assertThat(n).isEqualTo(expected);
          assertThat(Arrays.copyOf(buf.array(), n)).isEqualTo(Arrays.copyOfRange(content, offset, offset + expected));
        }
      }
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }
}
