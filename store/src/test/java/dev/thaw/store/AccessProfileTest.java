package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AccessProfileTest {
  @TempDir Path tmp;

  private static final int CHUNK = OriginTestSupport.CHUNK;

  @Test
  void recordsFirstTouchOrderSavesItAtTheOriginAndReplaysItIntoTheCache() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 3);
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("p"));
    ModelStore store = new ModelStore(origin);
    Manifest m = store.resolve(ModelName.parse("p"));
    AccessProfile recorded;
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c1"), 1 << 30);
        ModelReader reader = ModelReader.open(m, origin, cache, new ReaderOptions(2, 0, true))) {
      FileEntry second = (FileEntry) m.entry("weights/shard-00002.bin");
      FileEntry first = (FileEntry) m.entry("weights/shard-00001.bin");
      reader.read(second, 2L * CHUNK, ByteBuffer.allocate(10)); // chunk 2 of shard 2
      reader.read(first, 0, ByteBuffer.allocate(2 * CHUNK)); // chunks 0 and 1 of shard 1
      reader.read(second, 2L * CHUNK + 5, ByteBuffer.allocate(10)); // touched before: not recorded again
      recorded = reader.recordedProfile();
    }
    assertThat(recorded.runs()).containsExactly(
        new AccessProfile.Run("weights/shard-00002.bin", 2, 1),
        new AccessProfile.Run("weights/shard-00001.bin", 0, 2));
    String where = store.saveProfile(recorded, tmp.resolve("local"));
    assertThat(where).endsWith("profiles/" + m.digestHex() + ".json");
    Optional<AccessProfile> loaded = store.profile(m, tmp.resolve("local"));
    assertThat(loaded).contains(recorded);

    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c2"), 1 << 30);
        ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
      reader.prefetch(loaded.orElseThrow()).get(30, TimeUnit.SECONDS);
      assertThat(cache.chunkCount()).isEqualTo(3);
      assertThat(reader.chunksFetched()).isEqualTo(3);
    }
  }

  @Test
  void thePartUnderADirectoryIsOneModelsAndALaterRunAddsOnlyWhatItReadBeyondTheProfile() {
    AccessProfile recorded = new AccessProfile("sha256:m", List.of(
        new AccessProfile.Run("mlp/1/model.onnx", 0, 3),
        new AccessProfile.Run("mlp2/1/model.onnx", 0, 2),
        new AccessProfile.Run("mlp/config.pbtxt", 0, 1)));

    assertThat(recorded.under("mlp").runs()).as("not mlp2, whose name only begins like it").containsExactly(
        new AccessProfile.Run("mlp/1/model.onnx", 0, 3), new AccessProfile.Run("mlp/config.pbtxt", 0, 1));
    assertThat(recorded.under("none").chunkCount()).isZero();

    AccessProfile later = new AccessProfile("sha256:m", List.of(
        new AccessProfile.Run("mlp/1/model.onnx", 1, 4), // chunks 1 and 2 known, 3 and 4 new
        new AccessProfile.Run("small/1/model.onnx", 0, 1)));
    AccessProfile merged = recorded.plus(later);
    assertThat(merged.runs()).containsExactly(
        new AccessProfile.Run("mlp/1/model.onnx", 0, 3),
        new AccessProfile.Run("mlp2/1/model.onnx", 0, 2),
        new AccessProfile.Run("mlp/config.pbtxt", 0, 1),
        new AccessProfile.Run("mlp/1/model.onnx", 3, 2),
        new AccessProfile.Run("small/1/model.onnx", 0, 1));
    assertThat(recorded.plus(recorded)).isEqualTo(recorded);
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> recorded.plus(new AccessProfile("sha256:other",
        List.of()))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("sha256:other");
  }

  @Test
  void aDirectorysFirstReadAndItsChunksFirstToEvictLeaveTheRestOfTheModelAlone() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 6);
    java.nio.file.Files.write(dir.resolve("copy.bin"), java.nio.file.Files.readAllBytes(
        dir.resolve("weights/shard-00002.bin"))); // the same bytes outside weights/: its chunks are shared
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("p"));
    Manifest m = new ModelStore(origin).resolve(ModelName.parse("p"));
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 1 << 30);
        ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
      var weightsRead = reader.firstReadUnder("weights");
      reader.read((FileEntry) m.entry("config.json"), 0, ByteBuffer.allocate(10));
      assertThat(weightsRead).as("config.json is not under weights/").isNotDone();
      long before = System.nanoTime();
      reader.read((FileEntry) m.entry("weights/shard-00001.bin"), 0, ByteBuffer.allocate(10));
      assertThat(weightsRead).isDone();
      assertThat(weightsRead.get()).isGreaterThanOrEqualTo(before);

      reader.fillAll().get(30, TimeUnit.SECONDS); // every chunk cached
      assertThat(reader.evictFirstUnder("weights")).as("shard 1's five chunks; shard 2's are copy.bin's too")
          .isEqualTo(5);
      assertThat(cache.contains(((FileEntry) m.entry("weights/shard-00001.bin")).chunks().getFirst().key()))
          .as("nothing deleted until room is needed").isTrue();
    }
  }

  @Test
  void aProfileIsKeptLocallyWhenTheOriginIsReadOnly() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 4);
    Origin writable = Origins.open(tmp.resolve("origin").toString());
    new Pusher(writable, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("p"));
    Origin readOnly = new ReadOnlyOrigin(writable);
    ModelStore store = new ModelStore(readOnly);
    Manifest m = store.resolve(ModelName.parse("p"));
    AccessProfile p = AccessProfile.of(m.digest(), List.of("config.json"), List.of(0));
    String where = store.saveProfile(p, tmp.resolve("local"));
    assertThat(Path.of(where)).startsWith(tmp.resolve("local")).exists();
    assertThat(store.profile(m, tmp.resolve("local"))).contains(p);
  }

  @Test
  void aBlockedReadJumpsAheadOfQueuedProfilePrefetches() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 5);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("p"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("p"));
    CountDownLatch gate = new CountDownLatch(1);
    List<String> order = Collections.synchronizedList(new ArrayList<>());
    Origin gated = new ReadOnlyOrigin(files) {
      @Override
      public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
        try {
          gate.await();
        } catch (InterruptedException e) {
          throw new OriginException(key, -1, false, "interrupted", e);
        }
        order.add(key);
        super.read(key, offset, dst, ifMatch);
      }
    };
    FileEntry shard = (FileEntry) m.entry("weights/shard-00001.bin");
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader reader = ModelReader.open(m, gated, cache, new ReaderOptions(1, 0, false))) {
      // One worker: chunk 0 starts and waits at the gate; chunks 1..4 queue behind it as profile prefetches.
      var prefetch = reader.prefetch(new AccessProfile(m.digest(), List.of(new AccessProfile.Run(shard.path(), 0, 5))));
      Thread.sleep(200);
      Thread blocked = Thread.ofPlatform().start(() -> {
        try {
          reader.read(shard, 4L * CHUNK, ByteBuffer.allocate(100)); // needs chunk 4, last in the profile
        } catch (java.io.IOException e) {
          throw new RuntimeException(e);
        }
      });
      Thread.sleep(200);
      gate.countDown();
      blocked.join(10_000);
      prefetch.get(10, TimeUnit.SECONDS);
    }
    List<String> keys = shard.chunks().stream().map(ChunkRef::objectKey).toList();
    assertThat(order).hasSize(5);
    assertThat(order.get(0)).isEqualTo(keys.get(0));
    assertThat(order.get(1)).as("the blocked read's chunk goes next").isEqualTo(keys.get(4));
    assertThat(order.subList(2, 5)).containsExactly(keys.get(1), keys.get(2), keys.get(3));
  }

  @Test
  void aBlockedReadIsServedWhileEveryOtherWorkerIsBusyWithPrefetches() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 9);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("r"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("r"));
    FileEntry first = (FileEntry) m.entry("weights/shard-00001.bin");
    FileEntry shard = (FileEntry) m.entry("weights/shard-00002.bin");
    String wanted = shard.chunks().get(3).objectKey();
    CountDownLatch stalled = new CountDownLatch(1);
    Origin stalling = stallingAllBut(files, wanted, stalled); // every chunk but the blocked read's hangs until the end
    int parallelism = 8;
    assertThat(ChunkFetcher.reservedForBlocking(parallelism)).isEqualTo(1);
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader reader = ModelReader.open(m, stalling, cache, new ReaderOptions(parallelism, 0, false))) {
      // Eight profile prefetches for the seven general workers: those that start hang, the others wait their turn.
      reader.prefetch(new AccessProfile(m.digest(), List.of(new AccessProfile.Run(first.path(), 0, 5),
          new AccessProfile.Run(shard.path(), 0, 3))));
      Thread.sleep(200);
      ByteBuffer got = ByteBuffer.allocate(100);
      var read = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
        try {
          return reader.read(shard, 3L * CHUNK, got);
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      assertThat(read.get(10, TimeUnit.SECONDS)).as("served by the reserved worker").isEqualTo(100);
      byte[] expected = java.util.Arrays.copyOfRange(java.nio.file.Files.readAllBytes(dir.resolve(shard.path())), 3 * CHUNK, 3 * CHUNK + 100);
      assertThat(got.array()).isEqualTo(expected);
    } finally {
      stalled.countDown();
    }
  }

  @Test
  void prefetchesStartTwoAtATimeThenMoreAsEachCompletes() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 11);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("s"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("s"));
    FileEntry first = (FileEntry) m.entry("weights/shard-00001.bin");
    FileEntry second = (FileEntry) m.entry("weights/shard-00002.bin");
    CountDownLatch gate = new CountDownLatch(1);
    java.util.concurrent.atomic.AtomicInteger running = new java.util.concurrent.atomic.AtomicInteger();
    java.util.concurrent.atomic.AtomicInteger most = new java.util.concurrent.atomic.AtomicInteger();
    Origin counting = new ReadOnlyOrigin(files) {
      @Override
      public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
        most.accumulateAndGet(running.incrementAndGet(), Math::max);
        try {
          gate.await();
          Thread.sleep(20); // long enough for the next ones to overlap
        } catch (InterruptedException e) {
          throw new OriginException(key, -1, false, "interrupted", e);
        } finally {
          running.decrementAndGet();
        }
        super.read(key, offset, dst, ifMatch);
      }
    };
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader reader = ModelReader.open(m, counting, cache, new ReaderOptions(16, 0, false))) {
      var prefetch = reader.prefetch(new AccessProfile(m.digest(), List.of(new AccessProfile.Run(first.path(), 0, 5),
          new AccessProfile.Run(second.path(), 0, 4))));
      Thread.sleep(300);
      assertThat(running).as("two at first, however many workers are free").hasValue(ChunkFetcher.SLOW_START);
      gate.countDown();
      prefetch.get(10, TimeUnit.SECONDS);
    }
    assertThat(most.get()).as("more at once as the first ones completed").isGreaterThan(ChunkFetcher.SLOW_START);
  }

  @Test
  void aBlockedReadDoesNotWaitBehindAPrefetchHeldBackBySlowStart() throws Exception {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 13);
    Origin files = Origins.open(tmp.resolve("origin").toString());
    new Pusher(files, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("h"));
    Manifest m = new ModelStore(files).resolve(ModelName.parse("h"));
    FileEntry shard = (FileEntry) m.entry("weights/shard-00001.bin");
    String wanted = shard.chunks().get(4).objectKey();
    CountDownLatch stalled = new CountDownLatch(1);
    Origin stalling = stallingAllBut(files, wanted, stalled); // every chunk but the blocked read's hangs until the end
    // Three workers, none reserved: two prefetches start and hang, the third worker holds the third waiting for a slot.
    assertThat(ChunkFetcher.reservedForBlocking(3)).isZero();
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("c"), 1 << 30);
        ModelReader reader = ModelReader.open(m, stalling, cache, new ReaderOptions(3, 0, false))) {
      reader.prefetch(new AccessProfile(m.digest(), List.of(new AccessProfile.Run(shard.path(), 0, 3))));
      Thread.sleep(200);
      ByteBuffer got = ByteBuffer.allocate(100);
      var read = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
        try {
          return reader.read(shard, 4L * CHUNK, got);
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      assertThat(read.get(10, TimeUnit.SECONDS)).as("the waiting worker put its prefetch back and served the read")
          .isEqualTo(100);
    } finally {
      stalled.countDown();
    }
  }

  /** {@code files}, read-only, where every object but {@code wanted} hangs until {@code stalled} opens. */
  private static Origin stallingAllBut(Origin files, String wanted, CountDownLatch stalled) {
    return new ReadOnlyOrigin(files) {
      @Override
      public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
        if (!key.equals(wanted)) {
          try {
            stalled.await();
          } catch (InterruptedException e) {
            throw new OriginException(key, -1, false, "interrupted", e);
          }
        }
        super.read(key, offset, dst, ifMatch);
      }
    };
  }

  /** A real origin seen through a read-only view (as an http origin is). */
  static class ReadOnlyOrigin implements Origin {
    private final Origin delegate;

    ReadOnlyOrigin(Origin delegate) {
      this.delegate = delegate;
    }

    @Override
    public String uri() {
      return delegate.uri();
    }

    @Override
    public boolean writable() {
      return false;
    }

    @Override
    public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
      delegate.read(key, offset, dst, ifMatch);
    }

    @Override
    public byte[] readAll(String key) throws OriginException {
      return delegate.readAll(key);
    }

    @Override
    public Optional<ObjectInfo> stat(String key) throws OriginException {
      return delegate.stat(key);
    }

    @Override
    public List<ObjectInfo> list(String prefix) throws OriginException {
      return delegate.list(prefix);
    }

    @Override
    public void write(String key, ByteBuffer data) throws OriginException {
      throw new OriginException(key, -1, false, "read-only", null);
    }

    @Override
    public void delete(String key) throws OriginException {
      throw new OriginException(key, -1, false, "read-only", null);
    }

    @Override
    public void touch(String key) throws OriginException {
      throw new OriginException(key, -1, false, "read-only", null);
    }
  }
}
