package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.store.Manifest;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One real mount of a pushed model, shared by the class: the tree, attributes and every way of reading. */
class LazyMountTest {
  @TempDir static Path tmp;
  static Path model;
  static Path mnt;
  static TestModels.Reading reading;
  static LazyMount mount;

  @BeforeAll
  static void mountAModel() throws Exception {
    model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "m:v1");
    reading = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("cache"), ReaderOptions.DEFAULT);
    mnt = tmp.resolve("mnt");
    mount = LazyMount.mount(reading.reader(), mnt, MountOptions.DEFAULT);
  }

  @AfterAll
  static void unmount() throws Exception {
    mount.close();
    reading.close();
    assertThat(MountTable.find(mnt)).isEmpty();
  }

  @Test
  void theKernelListsItAsAReadOnlyThawMountWithLargeRequests() throws Exception {
    MountTable.MountInfo info = MountTable.find(mnt).orElseThrow();
    assertThat(info.fsType()).isEqualTo("fuse.thaw");
    assertThat(Files.readString(Path.of("/sys/class/bdi", info.device(), "read_ahead_kb")).trim()).isEqualTo("4096");
    assertThatThrownBy(() -> Files.writeString(mnt.resolve("config.json"), "x")).isInstanceOf(IOException.class);
    assertThatThrownBy(() -> Files.createFile(mnt.resolve("new"))).isInstanceOf(IOException.class);
  }

  @Test
  void theTreeMatchesTheModelDirectory() throws Exception {
    try (Stream<Path> s = Files.list(mnt)) {
      assertThat(s.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("weights", "config.json", "empty.bin", "d0");
    }
    assertThat(Files.size(mnt.resolve("weights/shard-2.bin"))).isEqualTo(9 * TestModels.CHUNK + 777);
    assertThat(Files.size(mnt.resolve("empty.bin"))).isZero();
    assertThat(Files.readAllBytes(mnt.resolve("empty.bin"))).isEmpty();
    assertThat(Files.isSymbolicLink(mnt.resolve("weights/latest.bin"))).isTrue();
    assertThat(Files.readSymbolicLink(mnt.resolve("weights/latest.bin"))).isEqualTo(Path.of("shard-1.bin"));
    assertThat(Files.readAllBytes(mnt.resolve("weights/latest.bin"))).isEqualTo(Files.readAllBytes(model.resolve("weights/shard-1.bin")));
    Path leaf = mnt;
    for (int i = 0; i < 12; i++) {
      leaf = leaf.resolve("d" + i);
    }
    assertThat(Files.readString(leaf.resolve("leaf.txt"))).isEqualTo("deep\n");
    assertThat(Files.exists(mnt.resolve("missing"))).isFalse();
    assertThat(Files.getPosixFilePermissions(mnt.resolve("config.json")).toString()).doesNotContain("WRITE");
  }

  @Test
  void readsAcrossChunkBoundariesAndAtRandomOffsetsReturnTheFilesBytes() throws Exception {
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-2.bin"));
    Random random = new Random(7);
    try (FileChannel ch = FileChannel.open(mnt.resolve("weights/shard-2.bin"), StandardOpenOption.READ)) {
      for (int i = 0; i < 300; i++) {
        int off = random.nextInt(expected.length);
        int len = Math.min(random.nextInt(3 * TestModels.CHUNK) + 1, expected.length - off);
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining()) {
          if (ch.read(b, off + b.position()) < 0) {
            break;
          }
        }
        assertThat(b.array()).as("read %d+%d", off, len).isEqualTo(Arrays.copyOfRange(expected, off, off + len));
      }
      ByteBuffer past = ByteBuffer.allocate(10);
      assertThat(ch.read(past, expected.length + 5)).isEqualTo(-1);
    }
  }

  @Test
  void mmapReadsSeeTheFilesBytes() throws Exception {
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-1.bin"));
    try (FileChannel ch = FileChannel.open(mnt.resolve("weights/shard-1.bin"), StandardOpenOption.READ)) {
      MappedByteBuffer map = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size());
      byte[] got = new byte[expected.length];
      map.get(got);
      assertThat(got).isEqualTo(expected);
    }
  }

  @Test
  void concurrentReadersOfOneFileAndOfManyFilesGetExactBytes() throws Exception {
    List<Path> files = List.of(Path.of("weights/shard-1.bin"), Path.of("weights/shard-2.bin"), Path.of("config.json"));
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<?>> all = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        Path rel = files.get(t % files.size() == 2 ? 0 : t % files.size());
        long seed = t;
        all.add(pool.submit(() -> {
          byte[] expected = Files.readAllBytes(model.resolve(rel));
          Random random = new Random(seed);
          try (FileChannel ch = FileChannel.open(mnt.resolve(rel), StandardOpenOption.READ)) {
            for (int i = 0; i < 50; i++) {
              int off = random.nextInt(expected.length);
              int len = Math.min(random.nextInt(200_000) + 1, expected.length - off);
              ByteBuffer b = ByteBuffer.allocate(len);
              while (b.hasRemaining() && ch.read(b, off + b.position()) >= 0) {
                // keep reading
              }
              assertThat(b.array()).isEqualTo(Arrays.copyOfRange(expected, off, off + len));
            }
          }
          return null;
        }));
      }
      for (Future<?> f : all) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aSecondMountOnTheSameDirectoryIsRefusedWithAClearMessage() {
    assertThatThrownBy(() -> LazyMount.mount(reading.reader(), mnt, MountOptions.DEFAULT))
        .isInstanceOf(IOException.class).hasMessageContaining("already a mount point").hasMessageContaining("thaw unmount");
  }
}
