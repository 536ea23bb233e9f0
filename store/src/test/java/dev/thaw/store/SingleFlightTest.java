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
    Origin counting = gated(files, reads, gate);
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

  /** An origin that counts range reads and holds each until {@code gate} opens. */
  private static Origin gated(Origin files, AtomicInteger reads, CountDownLatch gate) {
    return gated(files, reads, gate, new CountDownLatch(1));
  }

  /** As {@link #gated(Origin, AtomicInteger, CountDownLatch)}, counting {@code answered} down as each read returns. */
  private static Origin gated(Origin files, AtomicInteger reads, CountDownLatch gate, CountDownLatch answered) {
    return new AccessProfileTest.ReadOnlyOrigin(files) {
      @Override
      public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
        reads.incrementAndGet();
        try {
          gate.await();
        } catch (InterruptedException e) {
          throw new OriginException(key, -1, false, "interrupted", e);
        }
        super.read(key, offset, dst, ifMatch);
        answered.countDown();
      }
    };
  }

  @Test
  void twoMountsOfOneCacheWaitingForOneChunkCauseOneFetchAndClosingTheFirstLeavesTheSecondItsChunk() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 10);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, OriginTestSupport.CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("s"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("s"));
    AtomicInteger firstReads = new AtomicInteger();
    AtomicInteger secondReads = new AtomicInteger();
    CountDownLatch gate = new CountDownLatch(1);
    FileEntry shard = (FileEntry) m.entry("weights/shard-00001.bin");
    byte[] expected = java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve(shard.path())), 100, 1100);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader second = ModelReader.open(m, gated(files, secondReads, gate), cache, new ReaderOptions(4, 0, false))) {
      ModelReader first = ModelReader.open(m, gated(files, firstReads, gate), cache, new ReaderOptions(4, 0, false));
      Future<byte[]> fromFirst = pool.submit(() -> {
        ByteBuffer b = ByteBuffer.allocate(1000);
        first.read(shard, 100, b);
        return b.array();
      });
      Thread.sleep(200); // the first mount's fetch is at the origin
      Future<byte[]> fromSecond = pool.submit(() -> {
        ByteBuffer b = ByteBuffer.allocate(1000);
        second.read(shard, 100, b);
        return b.array();
      });
      Thread.sleep(200); // the second mount waits for the same fetch
      gate.countDown();
      assertThat(fromFirst.get()).isEqualTo(expected);
      assertThat(fromSecond.get()).isEqualTo(expected);
      first.close();
      assertThat(firstReads).as("the first mount's origin fetched the chunk").hasValue(1);
      assertThat(secondReads).as("the second mount's waited for that fetch").hasValue(0);

      // A chunk both want, queued but not started when the first mount closes, is still fetched for the second.
      ModelReader third = ModelReader.open(m, gated(files, firstReads, new CountDownLatch(0)), cache,
          new ReaderOptions(4, 0, false));
      FileEntry other = (FileEntry) m.entry("weights/shard-00002.bin");
      java.util.concurrent.CompletableFuture<Void> prefetch = third.prefetch(new AccessProfile(m.digest(),
          List.of(new AccessProfile.Run(other.path(), 0, other.chunkCount()))));
      third.close();
      ByteBuffer all = ByteBuffer.allocate((int) other.size());
      assertThat(second.read(other, 0, all)).isEqualTo((int) other.size());
      assertThat(all.array()).isEqualTo(Files.readAllBytes(dir.resolve(other.path())));
      // what only the closed mount wanted is dropped or done, never left waiting
      prefetch.handle((v, e) -> null).get(10, java.util.concurrent.TimeUnit.SECONDS);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aFetchThatOutlivesItsClosedCacheWritesNothingIntoTheCacheDirectory() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 11);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, OriginTestSupport.CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("s"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("s"));
    AtomicInteger reads = new AtomicInteger();
    CountDownLatch gate = new CountDownLatch(1);
    CountDownLatch answered = new CountDownLatch(1);
    Origin held = gated(files, reads, gate, answered);
    FileEntry shard = (FileEntry) m.entry("weights/shard-00001.bin");
    Path cacheDir = tmp.resolve("c");
    try {
      try (ChunkCache cache = ChunkCache.open(cacheDir, 1 << 30);
          ModelReader reader = ModelReader.open(m, held, cache, new ReaderOptions(2, 0, false))) {
        reader.prefetch(new AccessProfile(m.digest(), List.of(new AccessProfile.Run(shard.path(), 0, 1))));
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
        while (reads.get() == 0 && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
        assertThat(reads).as("the prefetch is at the origin").hasValue(1);
      } // close waits briefly for the fetch, then gives up the directory
      gate.countDown();
      assertThat(answered.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
      Thread.sleep(300); // time enough for a straggler's write, were there one
      try (var left = Files.walk(cacheDir)) {
        assertThat(left.filter(Files::isRegularFile).map(p -> cacheDir.relativize(p).toString()))
            .as("only the cache's own files, no chunk and no temporary file").containsOnly("lock", "hashes.log");
      }
      try (ChunkCache reopened = ChunkCache.open(cacheDir, 1 << 30)) {
        assertThat(reopened.contains(shard.chunks().get(0).key())).isFalse();
      }
    } finally {
      gate.countDown();
    }
  }
}
