package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads of chunks the cache already holds go to the kernel from the chunks' files: however many chunks one read
 * spans, and with bytes from the file's middle, its end and past it.
 */
class CachedReadTest {
  @TempDir Path tmp;

  @Test
  void aSecondMountOverAWarmCacheOfTinyChunksReturnsExactlyTheFilesBytesInLargeReads() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    byte[] bytes = TestModels.random(7, 3 * (1 << 20) + 12_345);
    Files.write(model.resolve("w.bin"), bytes);
    Manifest m;
    try (Origin o = Origins.open(tmp.resolve("origin").toString())) {
      new Pusher(o, 4096, 4, PushProgress.NONE).push(model, ModelName.parse("tiny:v1")); // ~250 chunks per read
      m = new ModelStore(o).resolve(ModelName.parse("tiny:v1"));
    }
    Path cache = tmp.resolve("cache");
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), cache, ReaderOptions.DEFAULT);
        LazyMount first = LazyMount.mount(r.reader(), tmp.resolve("mnt1"), MountOptions.DEFAULT)) {
      assertThat(Files.readAllBytes(first.mountPoint().resolve("w.bin"))).isEqualTo(bytes); // fetched and cached
    }
    // a new mount has an empty page cache: every read reaches it, and every chunk is in the chunk cache
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), cache, ReaderOptions.DEFAULT);
        LazyMount second = LazyMount.mount(r.reader(), tmp.resolve("mnt2"), MountOptions.DEFAULT);
        FileChannel ch = FileChannel.open(second.mountPoint().resolve("w.bin"), StandardOpenOption.READ)) {
      ByteBuffer all = ByteBuffer.allocate(bytes.length);
      while (all.hasRemaining() && ch.read(all) > 0) {
        // the kernel asks in requests of up to 1008 KiB
      }
      assertThat(all.array()).isEqualTo(bytes);
      ByteBuffer tail = ByteBuffer.allocate(100_000);
      assertThat(ch.read(tail, bytes.length - 5_000)).isEqualTo(5_000);
      assertThat(ch.read(tail.clear(), bytes.length + 10)).isEqualTo(-1);
      assertThat(r.reader().chunksFetched()).as("nothing fetched again").isZero();
      assertThat(second.fileSystem().failedReads()).isZero();
    }
  }
}
