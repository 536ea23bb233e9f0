package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PusherTest {
  @TempDir Path tmp;

  private static final int CHUNK = 64 << 10;

  private Path model() throws IOException {
    Path dir = OriginTestSupport.generateModel(tmp.resolve("model"), 7);
    Files.createSymbolicLink(dir.resolve("weights/current.bin"), Path.of("shard-00001.bin"));
    Files.setPosixFilePermissions(dir.resolve("config.json"), java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
    return dir;
  }

  @Test
  void pushedModelResolvesByTagAndReadsBackExactly() throws Exception {
    Path dir = model();
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    Pusher.Result r = new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("llm/demo:v1"));
    assertThat(r.bytesUploaded()).isEqualTo(r.bytesHashed()).isPositive();

    Manifest m = new ModelStore(origin).resolve(ModelName.parse("llm/demo:v1"));
    assertThat(m.digest()).isEqualTo(r.digest());
    assertThat(m.entry("config.json").mode()).isEqualTo(0600);
    assertThat(((SymlinkEntry) m.entry("weights/current.bin")).target()).isEqualTo("shard-00001.bin");
    assertThat(((FileEntry) m.entry("empty.txt")).chunkCount()).isZero();
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 1 << 30);
        ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
      OriginTestSupport.assertModelReadsBack(reader, dir);
    }
  }

  @Test
  void repushingAnUnchangedDirectoryUploadsNothingAndGivesTheSameDigest() throws Exception {
    Path dir = model();
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    Pusher pusher = new Pusher(origin, CHUNK, 4, PushProgress.NONE);
    Pusher.Result first = pusher.push(dir, ModelName.parse("m:1"));
    Pusher.Result second = pusher.push(dir, ModelName.parse("m:2"));
    assertThat(second.digest()).isEqualTo(first.digest());
    assertThat(second.bytesUploaded()).isZero();
    assertThat(second.chunksUploaded()).isZero();
    assertThat(second.bytesHashed()).isEqualTo(first.bytesHashed());
  }

  @Test
  void identicalChunksAreStoredOnce() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("dup"));
    byte[] same = OriginTestSupport.randomBytes(1, CHUNK);
    Files.write(dir.resolve("a"), same);
    Files.write(dir.resolve("b"), same);
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    Pusher.Result r = new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("dup"));
    assertThat(r.chunks()).isEqualTo(2);
    assertThat(r.chunksUploaded()).isEqualTo(1);
  }

  @Test
  void refusesASymlinkLeavingTheDirectory() throws Exception {
    Path dir = model();
    Files.createSymbolicLink(dir.resolve("escape"), Path.of("../../etc/passwd"));
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    assertThatThrownBy(() -> new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("x")))
        .hasMessageContaining("entry 'escape'").hasMessageContaining("leaves the tree");
    assertThat(tmp.resolve("origin/tags")).doesNotExist();
  }

  @Test
  void refusesAChainOfSymlinksThatTogetherLeaveTheDirectoryBeforeUploadingAnything() throws Exception {
    Path dir = model();
    Files.createDirectories(dir.resolve("a/b"));
    Files.createSymbolicLink(dir.resolve("a/b/up"), Path.of("../.."));
    Files.createSymbolicLink(dir.resolve("esc"), Path.of("a/b/up/../../outside/secret.txt"));
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    assertThatThrownBy(() -> new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(dir, ModelName.parse("x")))
        .isInstanceOf(ManifestException.class)
        .hasMessageContaining("cannot push " + dir)
        .hasMessageContaining("entry 'esc'").hasMessageContaining("leaves the tree through the link 'a/b/up'");
    assertThat(tmp.resolve("origin")).as("nothing uploaded").doesNotExist();
  }

  @Test
  void refusesAFileOfMoreChunksThanAReaderAcceptsBeforeUploadingAnythingNamingAChunkSizeThatFits() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("big"));
    try (var f = new java.io.RandomAccessFile(dir.resolve("weights.bin").toFile(), "rw")) {
      f.setLength((Manifest.MAX_CHUNKS_PER_FILE + 1L) * 1024); // sparse: 1 GiB and 1 KiB, none of it written
    }
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    long start = System.nanoTime();
    assertThatThrownBy(() -> new Pusher(origin, 1024, 4, PushProgress.NONE).push(dir, ModelName.parse("big")))
        .isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'weights.bin'")
        .hasMessageContaining("more than 1048576 chunks")
        .hasMessageContaining("use a chunk size of at least 1025 bytes");
    assertThat(Duration.ofNanos(System.nanoTime() - start)).as("refused before hashing").isLessThan(Duration.ofSeconds(5));
    assertThat(tmp.resolve("origin")).as("nothing uploaded").doesNotExist();
  }

  @Test
  void aFileOfHalfAMillionChunksThatPushAcceptsIsReadBackByAReader() throws Exception {
    // What the issue found: 481 MB at 1 KiB chunks pushed fine, and then no reader could parse its manifest.
    Path dir = Files.createDirectories(tmp.resolve("many"));
    try (var f = new java.io.RandomAccessFile(dir.resolve("weights.bin").toFile(), "rw")) {
      f.setLength(481_000_000L); // sparse
    }
    Origin origin = Origins.open(tmp.resolve("origin").toString());
    Pusher.Result r = new Pusher(origin, 1024, 4, PushProgress.NONE).push(dir, ModelName.parse("many:v1"));
    assertThat(r.chunks()).isEqualTo(469_727);
    Manifest m = new ModelStore(origin).resolve(ModelName.parse("many:v1"));
    assertThat(((FileEntry) m.entry("weights.bin")).chunkCount()).isEqualTo(469_727);
  }

  @Test
  void aPushKilledMidwayLeavesNoManifestOrTagAndARepushCompletes() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("big"));
    Random random = new Random(3);
    byte[] block = new byte[1 << 20];
    for (int f = 0; f < 4; f++) {
      try (var out = Files.newOutputStream(dir.resolve("shard-" + f + ".bin"))) {
        for (int i = 0; i < 64; i++) {
          random.nextBytes(block);
          out.write(block);
        }
      }
    }
    Path originDir = tmp.resolve("origin");
    Process child = ChildJvm.start(tmp.resolve("push.log"), "push", dir.toString(), originDir.toString(), "big:v1",
        String.valueOf(256 << 10));
    Path chunks = originDir.resolve("chunks");
    await().atMost(Duration.ofSeconds(60)).until(() -> countFiles(chunks) >= 20);
    ChildJvm.kill9(child);

    assertThat(originDir.resolve("tags")).doesNotExist();
    assertThat(originDir.resolve("manifests")).doesNotExist();
    Origin origin = Origins.open(originDir.toString());
    // Every chunk object that is visible is whole: it hashes to its name.
    for (ObjectInfo o : origin.list("chunks/")) {
      String name = o.key().substring(o.key().lastIndexOf('/') + 1);
      assertThat(Hashes.sha256Hex(origin.readAll(o.key()))).as(o.key()).isEqualTo(name);
    }
    long before = origin.list("chunks/").size();

    Pusher.Result r = new Pusher(origin, 256 << 10, 4, PushProgress.NONE).push(dir, ModelName.parse("big:v1"));
    assertThat(r.chunksUploaded()).isEqualTo(r.chunks() - before);
    Manifest m = new ModelStore(origin).resolve(ModelName.parse("big:v1"));
    try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 1 << 30);
        ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
      OriginTestSupport.assertModelReadsBack(reader, dir);
    }
  }

  @Test
  void aReaderNeverSeesATagWhoseChunksAreMissing() throws Exception {
    Path dir = model();
    Path originDir = tmp.resolve("origin");
    Origin origin = Origins.open(originDir.toString());
    Thread pusher = Thread.ofPlatform().start(() -> {
      try {
        new Pusher(origin, 4096, 1, PushProgress.NONE).push(dir, ModelName.parse("watched"));
      } catch (IOException e) {
        throw new RuntimeException(e);
      }
    });
    ModelStore store = new ModelStore(origin);
    while (pusher.isAlive() || Files.notExists(originDir.resolve("tags"))) {
      if (Files.exists(originDir.resolve("tags/watched/latest"))) {
        Manifest m = store.resolve(ModelName.parse("watched"));
        for (FileEntry f : m.files()) {
          for (ChunkRef c : f.chunks()) {
            assertThat(origin.stat(c.objectKey())).as(c.toString()).isPresent();
          }
        }
        break;
      }
      Thread.onSpinWait();
    }
    pusher.join();
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
