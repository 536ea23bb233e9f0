package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.store.Manifest;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/** Through a real mount, any sequence of reads at any offsets and lengths returns exactly the file's bytes. */
class MountReadPropertiesTest {
  private static Path root;
  private static byte[] content;
  private static TestModels.Reading reading;
  private static LazyMount mount;

  @BeforeContainer
  static void mount() throws IOException {
    root = Files.createTempDirectory("thaw-mount-props");
    Path model = TestModels.generate(root.resolve("model"));
    content = Files.readAllBytes(model.resolve("weights/shard-2.bin"));
    Manifest m = TestModels.push(model, root.resolve("origin"), "props:v1");
    reading = TestModels.Reading.open(m, root.resolve("origin").toString(), root.resolve("cache"), ReaderOptions.DEFAULT);
    mount = LazyMount.mount(reading.reader(), root.resolve("mnt"), MountOptions.DEFAULT);
  }

  @AfterContainer
  static void unmount() throws IOException {
    mount.close();
    reading.close();
    try (var s = Files.walk(root)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  @Provide
  Arbitrary<List<Tuple.Tuple2<Integer, Integer>>> reads() {
    Arbitrary<Integer> offsets = Arbitraries.integers().between(0, content.length + 100);
    Arbitrary<Integer> lengths = Arbitraries.integers().between(1, 3 * TestModels.CHUNK);
    return Combinators.combine(offsets, lengths).as(Tuple::of).list().ofMinSize(1).ofMaxSize(20);
  }

  @Property(tries = 50)
  void readsThroughTheMountReturnExactlyTheFilesBytes(@ForAll("reads") List<Tuple.Tuple2<Integer, Integer>> reads)
      throws IOException {
    try (FileChannel ch = FileChannel.open(mount.mountPoint().resolve("weights/shard-2.bin"), StandardOpenOption.READ)) {
      for (Tuple.Tuple2<Integer, Integer> r : reads) {
        int offset = r.get1();
        ByteBuffer buf = ByteBuffer.allocate(r.get2());
        int total = 0;
        int n;
        while (buf.hasRemaining() && (n = ch.read(buf, offset + total)) > 0) {
          total += n;
        }
        int expected = Math.max(0, Math.min(r.get2(), content.length - offset));
        assertThat(total).isEqualTo(expected);
        if (expected > 0) {
          assertThat(Arrays.copyOf(buf.array(), total)).isEqualTo(Arrays.copyOfRange(content, offset, offset + expected));
        }
      }
    }
  }
}
