package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.awaitility.Awaitility.await;

import dev.thaw.store.AccessProfile;
import dev.thaw.store.FaultyHttpServer;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origins;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Mounting, unmounting, profiles and failures, each test with mounts of its own. */
class MountLifecycleTest {
  @TempDir Path tmp;

  private static final Duration READ_TIMEOUT = Duration.ofSeconds(3);

  /** Reads one byte of each of the given chunks of a file, in the given order, through the mount. */
  private static void readChunks(Path file, List<Integer> order) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      for (int c : order) {
        ByteBuffer b = ByteBuffer.allocate(100);
        ch.read(b, (long) c * TestModels.CHUNK + 10);
      }
    }
  }

  @Test
  void aSecondMountOfARecordedModelServesTheSameReadsWithFarFewerBlockedReads() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "p:v1");
    String origin = tmp.resolve("origin").toString();
    List<Integer> order = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      order.add(i);
    }
    Collections.shuffle(order, new Random(3)); // scattered, as a loader reading tensors out of order: no readahead helps
    ReaderOptions recording = new ReaderOptions(8, 0, true, READ_TIMEOUT);
    long firstBlocked;
    AccessProfile profile;
    try (TestModels.Reading r = TestModels.Reading.open(m, origin, tmp.resolve("c1"), recording);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt1"), MountOptions.DEFAULT)) {
      readChunks(mount.mountPoint().resolve("weights/shard-1.bin"), order);
      firstBlocked = r.reader().blockedReads();
      profile = r.reader().recordedProfile();
      new ModelStore(r.origin()).saveProfile(profile, tmp.resolve("c1"));
    }
    assertThat(firstBlocked).isGreaterThanOrEqualTo(order.size() / 2);

    try (TestModels.Reading r = TestModels.Reading.open(m, origin, tmp.resolve("c2"), recording.withRecordProfile(false));
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt2"), MountOptions.DEFAULT)) {
      AccessProfile saved = new ModelStore(r.origin()).profile(m, tmp.resolve("c2")).orElseThrow();
      assertThat(saved).isEqualTo(profile);
      // What `thaw mount --prefetch auto` does right after mounting. Waited for here: a reader racing the prefetch
      // blocks on chunks it is fetching, and with blocks served as they arrive it keeps pace with it, so how many
      // reads block then says how the race went, not whether the profile brought the right chunks.
      r.reader().prefetch(saved).get(30, java.util.concurrent.TimeUnit.SECONDS);
      long fetchedByPrefetch = r.reader().chunksFetched();
      readChunks(mount.mountPoint().resolve("weights/shard-1.bin"), order);
      assertThat(r.reader().blockedReads()).as("blocked reads with the profile prefetched, against %d without", firstBlocked)
          .isZero();
      assertThat(r.reader().chunksFetched()).as("the profile brought every chunk those reads wanted, and no more")
          .isEqualTo(fetchedByPrefetch).isEqualTo(order.size());
    }
  }

  @Test
  void whenTheOriginGoesDownAnUncachedReadFailsWithEioWithinTheTimeoutAndCachedFilesStillRead() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "f:v1");
    FaultyHttpServer server = new FaultyHttpServer(tmp.resolve("origin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, server.url(), tmp.resolve("c"),
            new ReaderOptions(4, 0, false, READ_TIMEOUT));
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
      Path cached = mount.mountPoint().resolve("weights/shard-2.bin");
      byte[] expected = Files.readAllBytes(model.resolve("weights/shard-2.bin"));
      assertThat(Files.readAllBytes(cached)).isEqualTo(expected);
      server.close(); // the origin is down from here on

      long start = System.nanoTime();
      assertThatThrownBy(() -> {
        try (InputStream in = Files.newInputStream(mount.mountPoint().resolve("weights/shard-1.bin"))) {
          in.readAllBytes();
        }
      }).isInstanceOf(IOException.class).hasMessageContaining("Input/output error");
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      assertThat(took).as("EIO within the read timeout plus slack").isLessThan(READ_TIMEOUT.multipliedBy(3));
      assertThat(mount.fileSystem().failedReads()).isPositive();
      // Other files keep working: the cached shard still reads (drop the kernel's copy first).
      dropPageCache();
      assertThat(Files.readAllBytes(cached)).isEqualTo(expected);
    } finally {
      server.close();
    }
  }

  @Test
  void unmountingWhileAFileIsOpenSucceedsAndTheOpenFileKeepsReading() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "u:v1");
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-1.bin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("c"), ReaderOptions.DEFAULT)) {
      LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT);
      try (FileChannel open = FileChannel.open(mount.mountPoint().resolve("weights/shard-1.bin"), StandardOpenOption.READ)) {
        MountTable.unmount(mount.mountPoint(), true); // what `thaw unmount` falls back to
        assertThat(MountTable.find(mount.mountPoint())).isEmpty();
        ByteBuffer b = ByteBuffer.allocate(expected.length);
        while (b.hasRemaining() && open.read(b) >= 0) {
          // the detached mount still serves its open file
        }
        assertThat(b.array()).isEqualTo(expected);
      }
      mount.close();
    }
  }

  @Test
  void aStaleMountLeftByAKilledProcessIsClearedByTheNextMount() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    TestModels.push(model, tmp.resolve("origin"), "s:v1");
    Path mnt = tmp.resolve("mnt");
    String java = ProcessHandle.current().info().command().orElse("java");
    Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
        "-Djava.library.path=/usr/lib/x86_64-linux-gnu", "-cp", System.getProperty("java.class.path"),
        MountChild.class.getName(), tmp.resolve("origin").toString(), "s:v1", tmp.resolve("child-cache").toString(), mnt.toString())
        .redirectErrorStream(true).redirectOutput(tmp.resolve("child.log").toFile()).start();
    try {
      await().atMost(Duration.ofSeconds(60)).until(() -> Files.exists(mnt.resolve("config.json")));
    } finally {
      child.destroyForcibly(); // SIGKILL: the kernel keeps the mount, nobody serves it
      if (!child.waitFor(10, TimeUnit.SECONDS)) {
        // killed while one of its threads waited on its own mount: it cannot finish dying until the connection is
        // aborted (this happened once in CI)
        assertThat(MountTable.abort(mnt)).isTrue();
        child.waitFor();
      }
    }
    assertThat(MountTable.isStale(mnt)).isTrue();
    assertThatThrownBy(() -> Files.readAllBytes(mnt.resolve("config.json"))).isInstanceOf(IOException.class);

    Manifest m = new ModelStore(Origins.open(tmp.resolve("origin").toString())).resolve(dev.thaw.store.ModelName.parse("s:v1"));
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("c"), ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), mnt, MountOptions.DEFAULT)) {
      assertThat(MountTable.isStale(mnt)).isFalse();
      assertThat(Files.readString(mnt.resolve("config.json"))).isEqualTo("{\"layers\": 4}\n");
    }
  }

  @Test
  void aMountWhoseDaemonIsStoppedMakesTheNextMountThereFailSayingSoInsteadOfHanging() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    TestModels.push(model, tmp.resolve("origin"), "z:v1");
    Path mnt = tmp.resolve("mnt");
    String java = ProcessHandle.current().info().command().orElse("java");
    Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
        "-Djava.library.path=/usr/lib/x86_64-linux-gnu", "-cp", System.getProperty("java.class.path"),
        MountChild.class.getName(), tmp.resolve("origin").toString(), "z:v1", tmp.resolve("child-cache").toString(), mnt.toString())
        .redirectErrorStream(true).redirectOutput(tmp.resolve("child.log").toFile()).start();
    try {
      await().atMost(Duration.ofSeconds(60)).until(() -> Files.exists(mnt.resolve("config.json")));
      signal("STOP", child.pid()); // a daemon stopped (SIGSTOP, a debugger) still holds its mount; nobody answers
      Manifest m = new ModelStore(Origins.open(tmp.resolve("origin").toString())).resolve(dev.thaw.store.ModelName.parse("z:v1"));
      try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("c"), ReaderOptions.DEFAULT)) {
        long start = System.nanoTime();
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> assertThatThrownBy(
            () -> LazyMount.mount(r.reader(), mnt, MountOptions.DEFAULT))
            .isInstanceOf(IOException.class)
            .hasMessageContaining(mnt.toString())
            .hasMessageContaining("has not answered")
            .hasMessageContaining("fusermount3 -u -z " + mnt));
        assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(MountTable.PROBE_TIMEOUT.plusSeconds(5));
      }
    } finally {
      signal("CONT", child.pid());
      child.destroyForcibly();
      if (!child.waitFor(10, TimeUnit.SECONDS)) {
        MountTable.abort(mnt);
        child.waitFor();
      }
      if (MountTable.find(mnt).isPresent()) {
        MountTable.unmount(mnt, true);
      }
    }
  }

  private static void signal(String name, long pid) throws IOException, InterruptedException {
    assertThat(new ProcessBuilder("kill", "-" + name, Long.toString(pid)).inheritIO().start().waitFor()).isZero();
  }

  @Test
  void aDirectModeMountServesFilesLargerThanFourGibibytes() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("plain"));
    long size = 5L << 30;
    long marker = (9L << 29) + 12345; // 4.5 GiB and a bit
    byte[] stamp = TestModels.random(9, 4096);
    try (RandomAccessFile f = new RandomAccessFile(dir.resolve("huge.bin").toFile(), "rw")) {
      f.setLength(size); // sparse: no 5 GiB written
      f.seek(marker);
      f.write(stamp);
      f.seek(size - 3);
      f.write(new byte[] {1, 2, 3});
    }
    try (var origin = Origins.open(dir.toUri().toString())) {
      Manifest m = dev.thaw.store.DirectListing.list(origin, 8 << 20);
      try (TestModels.Reading r = TestModels.Reading.open(m, dir.toUri().toString(), tmp.resolve("c"), ReaderOptions.DEFAULT);
          LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
        Path huge = mount.mountPoint().resolve("huge.bin");
        assertThat(Files.size(huge)).isEqualTo(size);
        try (FileChannel ch = FileChannel.open(huge, StandardOpenOption.READ)) {
          ByteBuffer b = ByteBuffer.allocate(stamp.length + 100);
          ch.read(b, marker - 100);
          assertThat(Arrays.copyOfRange(b.array(), 100, 100 + stamp.length)).isEqualTo(stamp);
          assertThat(Arrays.copyOfRange(b.array(), 0, 100)).containsOnly(0);
          ByteBuffer tail = ByteBuffer.allocate(10);
          assertThat(ch.read(tail, size - 3)).isEqualTo(3);
          assertThat(Arrays.copyOf(tail.array(), 3)).containsExactly(1, 2, 3);
        }
        assertThat(r.reader().bytesFetched()).as("only the chunks read").isLessThan(64L << 20);
      }
    }
  }

  static void dropPageCache() throws IOException, InterruptedException {
    new ProcessBuilder("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches").inheritIO().start().waitFor();
  }
}
