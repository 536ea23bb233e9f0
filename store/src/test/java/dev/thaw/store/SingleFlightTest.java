package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SingleFlightTest {
  @TempDir Path tmp;

  @Test
  void manyReadersWaitingForOneChunkCauseOneFetch() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 9);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, OriginTestSupport.CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("s"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("s"));
    AtomicInteger reads = new AtomicInteger();
    CountDownLatch gate = new CountDownLatch(1);
    Origin counting = new AccessProfileTest.ReadOnlyOrigin(files) {
      @Override
      public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
        reads.incrementAndGet();
        try {
          gate.await();
        } catch (InterruptedException e) {
          throw new OriginException(key, -1, false, "interrupted", e);
        }
        super.read(key, offset, dst, ifMatch);
      }
    };
    FileEntry shard = (FileEntry) m.entry("weights/shard-00001.bin");
    byte[] expected = java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve(shard.path())), 100, 1100);
    ExecutorService pool = Executors.newFixedThreadPool(12);
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader reader = ModelReader.open(m, counting, cache, new ReaderOptions(8, 0, false))) {
      List<Future<byte[]>> results = new ArrayList<>();
      for (int i = 0; i < 12; i++) {
        results.add(pool.submit(() -> {
          ByteBuffer b = ByteBuffer.allocate(1000);
          reader.read(shard, 100, b);
          return b.array();
        }));
      }
      Thread.sleep(300); // let every reader reach the wait
      gate.countDown();
      for (Future<byte[]> r : results) {
        assertThat(r.get()).isEqualTo(expected);
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(reads).hasValue(1);
  }
}
