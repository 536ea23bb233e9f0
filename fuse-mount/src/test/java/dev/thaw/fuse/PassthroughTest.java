package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.store.Manifest;
import dev.thaw.store.ReaderOptions;
import java.io.RandomAccessFile;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file read whole through the mount gets a verified copy in the cache, and later opens of it are read by the kernel
 * from that copy (FUSE passthrough) without a request reaching Thaw: plain reads and memory maps alike. A copy whose
 * bytes rotted on disk is never handed to the kernel.
 */
class PassthroughTest {
  private static final MountOptions PASSTHROUGH = MountOptions.DEFAULT.withPassthrough(true);
  @TempDir Path tmp;

  @Test
  void withoutTheOptionEveryReadGoesThroughThawAndNoCopyIsMade() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "pt:v0");
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-2.bin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("cache"),
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
      Path shard = mount.mountPoint().resolve("weights/shard-2.bin");
      for (int i = 0; i < 3; i++) {
        assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      }
      Thread.sleep(500); // time a copy would have had
      assertThat(mount.passthroughOpens()).isZero();
      assertThat(r.reader().hasWholeFile("weights/shard-2.bin")).isFalse();
    }
  }

  @Test
  void aFileReadWholeIsThenReadByTheKernelFromItsCopyWithNoReadReachingThaw() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "pt:v1");
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-2.bin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("cache"),
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), PASSTHROUGH)) {
      Path shard = mount.mountPoint().resolve("weights/shard-2.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected); // through Thaw: fetched, verified, cached
      assertThat(mount.passthroughOpens()).isZero();
      awaitWholeFile(r, "weights/shard-2.bin"); // made in the background after the close; no open waits for it

      long before = r.reader().bytesRead();
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      try (RandomAccessFile f = new RandomAccessFile(shard.toFile(), "r")) {
        MappedByteBuffer map = f.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, expected.length);
        byte[] mapped = new byte[expected.length];
        map.get(mapped);
        assertThat(mapped).isEqualTo(expected);
      }
      assertThat(mount.passthroughOpens()).as("opens served from the whole-file copy").isEqualTo(2);
      assertThat(r.reader().bytesRead()).as("bytes Thaw served after the first read").isEqualTo(before);
      assertThat(mount.fileSystem().failedReads()).isZero();
    }
  }

  @Test
  void aFileReadOnlyInPartGetsNoCopyAndStaysServedByThaw() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "pt:v3");
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-1.bin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("cache"),
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), PASSTHROUGH)) {
      Path shard = mount.mountPoint().resolve("weights/shard-1.bin");
      for (int i = 0; i < 2; i++) {
        try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.READ)) {
          java.nio.ByteBuffer header = java.nio.ByteBuffer.allocate(4096);
          ch.read(header, 0); // a header: the rest of the file is not fetched
          assertThat(header.array()).isEqualTo(java.util.Arrays.copyOf(expected, 4096));
        }
      }
      assertThat(mount.passthroughOpens()).isZero();
      try (Stream<Path> files = Files.walk(tmp.resolve("cache"))) {
        assertThat(files.filter(p -> p.getFileName().toString().startsWith("whole-"))).isEmpty();
      }
    }
  }

  @Test
  void aWholeFileCopyThatRottedOnDiskIsNotUsedAndIsMadeAgain() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "pt:v2");
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-1.bin"));
    Path cache = tmp.resolve("cache");
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), cache,
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt1"), PASSTHROUGH)) {
      Path shard = mount.mountPoint().resolve("weights/shard-1.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      awaitWholeFile(r, "weights/shard-1.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      assertThat(mount.passthroughOpens()).isEqualTo(1);
    }
    Path copy = wholeFileCopies(cache);
    try (FileChannel ch = FileChannel.open(copy, StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {42, 42, 42}), 70_000); // bit rot inside the second chunk
    }
    // a new mount (a restarted sidecar) trusts nothing it has not checked itself
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), cache,
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt2"), PASSTHROUGH)) {
      Path shard = mount.mountPoint().resolve("weights/shard-1.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected); // served by Thaw while the copy is checked
      awaitWholeFile(r, "weights/shard-1.bin");
      for (int i = 0; i < 2; i++) {
        assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      }
      assertThat(r.reader().corruptCachedChunks()).as("the rotted copy, found and deleted").isEqualTo(1);
      assertThat(mount.passthroughOpens()).as("the copy made again from the chunks, for the later opens").isEqualTo(2);
      assertThat(Files.readAllBytes(wholeFileCopies(cache))).isEqualTo(expected);
    }
    // the next mount checks the sound copy, finds it right and uses it from its second open on
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), cache,
        ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt3"), PASSTHROUGH)) {
      Path shard = mount.mountPoint().resolve("weights/shard-1.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      awaitWholeFile(r, "weights/shard-1.bin");
      assertThat(Files.readAllBytes(shard)).isEqualTo(expected);
      assertThat(r.reader().corruptCachedChunks()).isZero();
      assertThat(mount.passthroughOpens()).isEqualTo(1);
    }
  }

  private static void awaitWholeFile(TestModels.Reading r, String path) throws InterruptedException {
    long deadline = System.nanoTime() + 30_000_000_000L;
    while (!r.reader().hasWholeFile(path)) {
      assertThat(System.nanoTime()).as("a whole-file copy of " + path + " within 30 s").isLessThan(deadline);
      Thread.sleep(10);
    }
  }

  /** The one whole-file copy in the cache directory. */
  private static Path wholeFileCopies(Path cache) throws Exception {
    try (Stream<Path> files = Files.walk(cache.resolve("chunks"))) {
      return files.filter(p -> p.getFileName().toString().startsWith("whole-")).findFirst().orElseThrow();
    }
  }
}
