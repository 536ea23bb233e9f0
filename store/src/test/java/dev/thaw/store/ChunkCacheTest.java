package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChunkCacheTest {
  @TempDir Path tmp;

  private static final int CHUNK = 64 << 10;

  private Manifest pushModel(Path dir, Origin origin, String name) throws IOException {
    new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse(name));
    return new ModelStore(origin).resolve(ModelName.parse(name));
  }

  @Test
  void aSecondOwnerIsRefusedAndToldWhichProcessHoldsTheCache() throws Exception {
    Path dir = tmp.resolve("cache");
    Process holder = ChildJvm.start(tmp.resolve("hold.log"), "hold-cache", dir.toString());
    try {
      await().atMost(Duration.ofSeconds(30)).until(() -> Files.exists(tmp.resolve("hold.log"))
          && Files.readString(tmp.resolve("hold.log")).contains("holding"));
      assertThatThrownBy(() -> ChunkCache.open(dir, 1 << 20))
          .isInstanceOf(CacheLockedException.class)
          .hasMessageContaining("is in use by pid " + holder.pid());
    } finally {
      ChildJvm.kill9(holder);
    }
    // The lock dies with its process: the directory can be opened again.
    ChunkCache.open(dir, 1 << 20).close();
  }

  @Test
  void aSecondCacheOnTheSameDirectoryInOneProcessIsRefusedToo() throws Exception {
    try (ChunkCache first = ChunkCache.open(tmp.resolve("c"), 1 << 20)) {
      assertThatThrownBy(() -> ChunkCache.open(tmp.resolve("c"), 1 << 20))
          .isInstanceOf(CacheLockedException.class)
          .hasMessageContaining("pid " + ProcessHandle.current().pid());
    }
  }

  @Test
  void reopeningDropsLeftoverTempFilesAndServesWhatItHolds() throws Exception {
    Path dir = tmp.resolve("cache");
    byte[] data = OriginTestSupport.randomBytes(1, 1000);
    String key = Hashes.sha256Hex(data);
    try (ChunkCache cache = ChunkCache.open(dir, 1 << 20)) {
      cache.put(key, ByteBuffer.wrap(data));
    }
    Files.write(dir.resolve("tmp").resolve(key + ".99"), new byte[10]); // as a crash mid-write leaves it
    try (ChunkCache cache = ChunkCache.open(dir, 1 << 20)) {
      assertThat(dir.resolve("tmp")).isEmptyDirectory();
      assertThat(cache.contains(key)).isTrue();
      assertThat(cache.usedBytes()).isEqualTo(1000);
      try (ChunkCache.Lease lease = cache.acquire(key)) {
        ByteBuffer b = ByteBuffer.allocate(1000);
        lease.read(b, 0);
        assertThat(b.array()).isEqualTo(data);
      }
    }
  }

  @org.junit.jupiter.params.ParameterizedTest(name = "cache on {0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"disk", "tmpfs"})
  void storesChunksOfAnyLengthBitForBitOnDiskAndOnTmpfs(String where) throws Exception {
    // Chunks are written around the page cache (O_DIRECT, padded to the block size, then cut to length) where the
    // file system allows it, and through the page cache where it does not (tmpfs): either way the bytes come back.
    Path base = where.equals("disk") ? tmp : Files.createTempDirectory(Path.of("/dev/shm"), "thaw-cache-test");
    try (ChunkCache cache = ChunkCache.open(base.resolve("cache"), 64 << 20)) {
      for (int length : new int[] {1, 4095, 4096, 4097, 1 << 20, (8 << 20) + 17}) {
        byte[] data = OriginTestSupport.randomBytes(length, length);
        String key = Hashes.sha256Hex(data);
        cache.put(key, ByteBuffer.wrap(data));
        try (ChunkCache.Lease lease = cache.acquire(key)) {
          assertThat(lease.size()).isEqualTo(length);
          ByteBuffer b = ByteBuffer.allocate(length);
          lease.read(b, 0);
          assertThat(b.array()).as("chunk of %d bytes", length).isEqualTo(data);
        }
      }
    } finally {
      if (!where.equals("disk")) {
        try (var walk = Files.walk(base)) {
          for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
            Files.delete(p);
          }
        }
      }
    }
  }

  @Test
  void evictsTheLeastRecentlyUsedChunkButNeverOneBeingRead() throws Exception {
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 3000)) {
      cache.put("aa01", ByteBuffer.allocate(1000));
      cache.put("aa02", ByteBuffer.allocate(1000));
      cache.put("aa03", ByteBuffer.allocate(1000));
      try (ChunkCache.Lease held = cache.acquire("aa01")) { // aa01 is now the most recent and pinned
        cache.put("aa04", ByteBuffer.allocate(1000));
        assertThat(cache.contains("aa02")).as("least recently used").isFalse();
        cache.put("aa05", ByteBuffer.allocate(1000));
        cache.put("aa06", ByteBuffer.allocate(1000));
        assertThat(cache.contains("aa01")).as("pinned by a reader").isTrue();
        assertThat(held.read(ByteBuffer.allocate(1000), 0)).isEqualTo(1000);
      }
      assertThat(cache.usedBytes()).isLessThanOrEqualTo(4000);
      cache.put("aa07", ByteBuffer.allocate(1000));
      assertThat(cache.usedBytes()).isLessThanOrEqualTo(3000);
    }
  }

  @Test
  void chunksPutFirstInLineAreEvictedBeforeOlderOnesOnlyWhenRoomIsNeeded() throws Exception {
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 3000)) {
      cache.put("bb01", ByteBuffer.allocate(1000));
      cache.put("bb02", ByteBuffer.allocate(1000));
      cache.put("bb03", ByteBuffer.allocate(1000)); // the most recently used
      assertThat(cache.evictFirst(java.util.List.of("bb03", "bb99"))).as("only those it holds").isEqualTo(1);
      assertThat(cache.contains("bb03")).as("nothing deleted until room is needed").isTrue();
      cache.put("bb04", ByteBuffer.allocate(1000));
      assertThat(cache.contains("bb03")).as("first in line").isFalse();
      assertThat(cache.contains("bb01")).as("otherwise least recently used, but kept").isTrue();
      cache.put("bb05", ByteBuffer.allocate(1000));
      assertThat(cache.contains("bb01")).as("then the usual order").isFalse();
    }
  }

  @Test
  void concurrentReadersUnderASmallLimitAlwaysGetTheFilesBytes() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 11);
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    Manifest m = pushModel(dir, origin, "small");
    // Room for four chunks while eight threads read: eviction runs constantly.
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 4L * CHUNK);
        ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT.withParallelism(4))) {
      ExecutorService pool = Executors.newFixedThreadPool(8);
      List<Future<?>> futures = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long seed = t;
        futures.add(pool.submit(() -> {
          Random random = new Random(seed);
          for (int i = 0; i < 60; i++) {
            FileEntry f = m.files().get(random.nextInt(m.files().size()));
            if (f.size() == 0) {
              continue;
            }
            byte[] expected = Files.readAllBytes(dir.resolve(f.path()));
            long off = random.nextLong(f.size());
            ByteBuffer buf = ByteBuffer.allocate((int) Math.min(random.nextInt(3 * CHUNK) + 1, f.size() - off));
            reader.read(f, off, buf);
            byte[] want = java.util.Arrays.copyOfRange(expected, (int) off, (int) off + buf.capacity());
            assertThat(buf.array()).isEqualTo(want);
          }
          return null;
        }));
      }
      for (Future<?> f : futures) {
        f.get();
      }
      pool.shutdown();
      assertThat(cache.evictions()).isPositive();
      assertThat(cache.usedBytes()).isLessThanOrEqualTo(4L * CHUNK + 8L * 3 * CHUNK);
    }
  }

  @Test
  void aProcessKilledWhileWritingTheCacheLeavesOnlyCorrectChunks() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    Random random = new Random(5);
    byte[] block = new byte[1 << 20];
    for (int f = 0; f < 3; f++) {
      try (var out = Files.newOutputStream(model.resolve("shard-" + f))) {
        for (int i = 0; i < 32; i++) {
          random.nextBytes(block);
          out.write(block);
        }
      }
    }
    Path originDir = tmp.resolve("origin");
    Origin origin = Origins.open(originDir.toString());
    new Pusher(origin, 256 << 10, 4, PushProgress.NONE).push(model, ModelName.parse("m"));
    Path cacheDir = tmp.resolve("cache");
    // A small limit keeps the child evicting and writing for as long as it runs.
    Process child = ChildJvm.start(tmp.resolve("read.log"), "read-forever", originDir.toString(), "m", cacheDir.toString(),
        String.valueOf(8L << 20));
    await().atMost(Duration.ofSeconds(60)).until(() -> countFiles(cacheDir.resolve("chunks")) >= 10);
    Thread.sleep(300);
    ChildJvm.kill9(child);

    try (ChunkCache cache = ChunkCache.open(cacheDir, 1L << 30)) {
      assertThat(cacheDir.resolve("tmp")).isEmptyDirectory();
      try (Stream<Path> files = Files.walk(cacheDir.resolve("chunks"))) {
        for (Path p : files.filter(Files::isRegularFile).toList()) {
          assertThat(Hashes.sha256Hex(Files.readAllBytes(p))).as("cached %s", p.getFileName()).isEqualTo(p.getFileName().toString());
        }
      }
      Manifest m = new ModelStore(origin).resolve(ModelName.parse("m"));
      try (ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
        OriginTestSupport.assertModelReadsBack(reader, model);
      }
    }
  }

  private static long countFiles(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).count();
    }
  }
}
