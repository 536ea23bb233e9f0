package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.randomBytes;
import static dev.thaw.store.OriginTestSupport.readFully;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A cache on a disk smaller than the model (a real 4 MiB tmpfs, mounted as root): reads succeed, by evicting. */
class SmallDiskCacheTest {
  private static final ModelName NAME = ModelName.parse("big:v1");
  private static final int DISK_MIB = 4;

  @TempDir Path tmp;
  private Path disk;
  private Path model;
  private Manifest manifest;

  @BeforeEach
  void mountASmallDiskAndPushAModelThreeTimesItsSize() throws Exception {
    disk = Files.createDirectories(tmp.resolve("disk"));
    run("mount", "-t", "tmpfs", "-o", "size=" + DISK_MIB + "m", "tmpfs", disk.toString());
    model = Files.createDirectories(tmp.resolve("model"));
    Files.write(model.resolve("weights.bin"), randomBytes(8, 3 * DISK_MIB * (1 << 20)));
    try (Origin origin = Origins.open(tmp.resolve("origin").toString())) {
      new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(model, NAME);
      manifest = new ModelStore(origin).resolve(NAME);
    }
  }

  @AfterEach
  void unmountTheDisk() throws Exception {
    run("umount", "-l", disk.toString());
  }

  private static void run(String... command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("%s: %s", String.join(" ", command), out).isZero();
  }

  private void assertTheModelReadsBackTwice(ChunkCache cache) throws IOException {
    byte[] expected = Files.readAllBytes(model.resolve("weights.bin"));
    try (Origin origin = Origins.open(tmp.resolve("origin").toString());
        ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
      assertThat(readFully(reader, "weights.bin", 100_000)).isEqualTo(expected);
      assertThat(readFully(reader, "weights.bin", 100_000)).isEqualTo(expected);
    }
    assertThat(cache.evictions()).isPositive();
  }

  @Test
  void theDefaultSizeFitsASmallDiskAndEveryUncachedReadSucceeds() throws Exception {
    Path dir = disk.resolve("cache");
    long size = ChunkCache.defaultMaxBytes(dir);
    assertThat(size).isLessThanOrEqualTo(DISK_MIB << 20).isGreaterThan((DISK_MIB << 20) / 2);
    try (ChunkCache cache = ChunkCache.open(dir, size)) {
      assertTheModelReadsBackTwice(cache);
    }
  }

  @Test
  void theDefaultSizeCountsWhatTheCacheAlreadyHoldsSoAFullCacheDoesNotShrinkItselfAtEachStart() throws Exception {
    Path dir = disk.resolve("cache");
    long first = ChunkCache.defaultMaxBytes(dir);
    try (ChunkCache cache = ChunkCache.open(dir, first)) {
      assertTheModelReadsBackTwice(cache);
      assertThat(cache.usedBytes()).isGreaterThan(first / 2);
    }
    assertThat(ChunkCache.defaultMaxBytes(dir)).isGreaterThan(first - 2 * CHUNK);
  }

  @Test
  void aCacheSizedPastItsDiskEvictsWhenTheDiskFillsInsteadOfFailingEveryRead() throws Exception {
    try (ChunkCache cache = ChunkCache.open(disk.resolve("cache"), 1L << 30)) {
      assertTheModelReadsBackTwice(cache);
      assertThat(cache.maxBytes()).as("the limit came down to what the disk holds").isLessThanOrEqualTo(DISK_MIB << 20);
    }
  }

  @Test
  void aFullDiskWhoseChunksAreAllBeingReadFailsTheWriteNamingTheCacheAndWhatToDo() throws Exception {
    List<ChunkCache.Lease> held = new ArrayList<>();
    try (ChunkCache cache = ChunkCache.open(disk.resolve("cache"), 1L << 30)) {
      Throwable failure = null;
      for (int i = 0; i < 2 * DISK_MIB * 16 && failure == null; i++) {
        byte[] bytes = randomBytes(100 + i, CHUNK);
        String key = Hashes.sha256Hex(bytes);
        try {
          cache.put(key, ByteBuffer.wrap(bytes));
          held.add(cache.acquire(key)); // being read: may not be evicted
        } catch (IOException e) {
          failure = e;
        }
      }
      assertThat(failure).as("a full disk is met").isNotNull()
          .hasMessageContaining("no room in the chunk cache " + cache.directory())
          .hasMessageContaining("every cached chunk is being read")
          .hasMessageContaining("--cache");
      held.forEach(ChunkCache.Lease::close);
    }
  }

  @Test
  void aDiskWithNoRoomForACacheIsNamedInsteadOfGivingAUselessDefault() throws Exception {
    Files.write(disk.resolve("filler"), new byte[(DISK_MIB << 20) - 4096 * 8]);
    assertThatThrownBy(() -> ChunkCache.defaultMaxBytes(disk.resolve("cache")))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("no room for a chunk cache in " + disk.resolve("cache"));
  }
}
