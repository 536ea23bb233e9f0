package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GarbageCollectorTest {
  @TempDir Path tmp;
  private Path originDir;
  private Origin origin;
  private String oldOrphan;
  private String youngOrphan;

  @BeforeEach
  void pushAModelAndTwoOrphans() throws Exception {
    originDir = tmp.resolve("origin");
    origin = Origins.open(originDir.toString());
    new Pusher(origin, OriginTestSupport.CHUNK, 4, PushProgress.NONE)
        .push(OriginTestSupport.generateModel(tmp.resolve("model"), 1), ModelName.parse("kept"));
    byte[] a = OriginTestSupport.randomBytes(100, 1000);
    byte[] b = OriginTestSupport.randomBytes(101, 1000);
    oldOrphan = ChunkRef.objectKeyForHash(Hashes.sha256Hex(a));
    youngOrphan = ChunkRef.objectKeyForHash(Hashes.sha256Hex(b));
    origin.write(oldOrphan, ByteBuffer.wrap(a));
    origin.write(youngOrphan, ByteBuffer.wrap(b));
    Instant twoDaysAgo = Instant.now().minus(Duration.ofDays(2));
    Files.setLastModifiedTime(originDir.resolve(oldOrphan), FileTime.from(twoDaysAgo));
    // Referenced chunks are old too: age alone never deletes a chunk.
    for (ObjectInfo o : origin.list("chunks/")) {
      if (!o.key().equals(youngOrphan)) {
        Files.setLastModifiedTime(originDir.resolve(o.key()), FileTime.from(twoDaysAgo));
      }
    }
  }

  @Test
  void deletesOnlyUnreferencedChunksOlderThanTheGracePeriod() throws Exception {
    long before = origin.list("chunks/").size();
    GarbageCollector.Result r = new GarbageCollector(origin, Clock.systemUTC()).collect(Duration.ofHours(24), false);
    assertThat(r.candidates()).extracting(ObjectInfo::key).containsExactly(oldOrphan);
    assertThat(r.youngUnreferenced()).isEqualTo(1);
    assertThat(origin.stat(oldOrphan)).isEmpty();
    assertThat(origin.stat(youngOrphan)).isPresent();
    assertThat(origin.list("chunks/")).hasSize((int) before - 1);
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 1 << 30);
        ModelReader reader = ModelReader.open(new ModelStore(origin).resolve(ModelName.parse("kept")), origin, cache,
            ReaderOptions.DEFAULT)) {
      OriginTestSupport.assertModelReadsBack(reader, tmp.resolve("model"));
    }
  }

  @Test
  void aDryRunListsWithoutDeleting() throws Exception {
    GarbageCollector.Result r = new GarbageCollector(origin, Clock.systemUTC()).collect(Duration.ofHours(24), true);
    assertThat(r.dryRun()).isTrue();
    assertThat(r.candidates()).extracting(ObjectInfo::key).containsExactly(oldOrphan);
    assertThat(origin.stat(oldOrphan)).isPresent();
  }

  @Test
  void aChunkTouchedByARunningPushSinceTheListingSurvives() throws Exception {
    Clock later = Clock.offset(Clock.systemUTC(), Duration.ofDays(3)); // everything is "old" to this collector
    // A push reusing the young orphan touches it; the collector's check just before deleting must see that.
    Origin touchingOrigin = new AccessProfileTest.ReadOnlyOrigin(origin) {
      @Override
      public boolean writable() {
        return true;
      }

      @Override
      public java.util.Optional<ObjectInfo> stat(String key) throws OriginException {
        if (key.equals(youngOrphan)) {
          return java.util.Optional.of(new ObjectInfo(key, 1000, "v", later.instant()));
        }
        return super.stat(key);
      }

      @Override
      public void delete(String key) throws OriginException {
        origin.delete(key);
      }
    };
    GarbageCollector.Result r = new GarbageCollector(touchingOrigin, later).collect(Duration.ofHours(24), false);
    assertThat(r.candidates()).extracting(ObjectInfo::key).containsExactly(oldOrphan);
    assertThat(origin.stat(youngOrphan)).isPresent();
  }

  @Test
  void tempFilesThatAKilledPushLeftAreDeletedOnceOlderThanTheGracePeriodAndALiveWritesIsKept() throws Exception {
    Path dead = Files.write(Files.createDirectories(originDir.resolve("chunks/ab")).resolve(FileOrigin.TEMP_PREFIX + "killed"),
        new byte[1234]);
    Files.setLastModifiedTime(dead, FileTime.from(Instant.now().minus(Duration.ofDays(2))));
    Path live = Files.write(originDir.resolve("manifests").resolve(FileOrigin.TEMP_PREFIX + "writing"), new byte[10]);

    GarbageCollector.Result dry = new GarbageCollector(origin, Clock.systemUTC()).collect(Duration.ofHours(24), true);
    assertThat(dry.temporaries()).extracting(ObjectInfo::key).containsExactly("chunks/ab/" + FileOrigin.TEMP_PREFIX + "killed");
    assertThat(dead).exists();

    GarbageCollector.Result r = new GarbageCollector(origin, Clock.systemUTC()).collect(Duration.ofHours(24), false);
    assertThat(r.temporaries()).extracting(ObjectInfo::key).containsExactly("chunks/ab/" + FileOrigin.TEMP_PREFIX + "killed");
    assertThat(r.temporaryBytes()).isEqualTo(1234);
    assertThat(dead).doesNotExist();
    assertThat(live).as("a write in progress").exists();
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 1 << 30);
        ModelReader reader = ModelReader.open(new ModelStore(origin).resolve(ModelName.parse("kept")), origin, cache,
            ReaderOptions.DEFAULT)) {
      OriginTestSupport.assertModelReadsBack(reader, tmp.resolve("model"));
    }
  }

  @Test
  void aCorruptManifestStopsCollectionBeforeAnythingIsDeleted() throws Exception {
    Path manifest;
    try (var s = Files.list(originDir.resolve("manifests"))) {
      manifest = s.findFirst().orElseThrow();
    }
    Files.writeString(manifest, "{\"version\":1}");
    assertThatThrownBy(() -> new GarbageCollector(origin, Clock.systemUTC()).collect(Duration.ofHours(24), false))
        .isInstanceOf(ManifestException.class).hasMessageContaining("corrupt");
    assertThat(origin.stat(oldOrphan)).isPresent();
  }
}
