package dev.thaw.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.store.FileEntry;
import dev.thaw.store.Hashes;
import dev.thaw.store.Manifest;
import dev.thaw.store.ManifestException;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.ReaderOptions;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a mount must never show: bytes that rotted in the cache, or a file outside the model's tree. */
class MountSafetyTest {
  @TempDir Path tmp;

  @Test
  void aCachedChunkThatRottedOnDiskIsNeverServedByTheNextMount() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "rot:v1");
    String origin = tmp.resolve("origin").toString();
    byte[] expected = Files.readAllBytes(model.resolve("weights/shard-1.bin"));
    try (TestModels.Reading r = TestModels.Reading.open(m, origin, tmp.resolve("c"), ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
      assertThat(Files.readAllBytes(mount.mountPoint().resolve("weights/shard-1.bin"))).isEqualTo(expected);
    }
    String key = ((FileEntry) m.entry("weights/shard-1.bin")).chunks().get(5).key();
    Path cached = tmp.resolve("c/chunks").resolve(key.substring(0, 2)).resolve(key);
    byte[] bytes = Files.readAllBytes(cached);
    bytes[123] ^= 0x10;
    Files.write(cached, bytes);
    MountLifecycleTest.dropPageCache();

    try (TestModels.Reading r = TestModels.Reading.open(m, origin, tmp.resolve("c"), ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
      assertThat(Files.readAllBytes(mount.mountPoint().resolve("weights/shard-1.bin"))).isEqualTo(expected);
      assertThat(r.reader().corruptCachedChunks()).isEqualTo(1);
      assertThat(mount.fileSystem().failedReads()).isZero();
    }
  }

  @Test
  void chainsOfSymlinksInsideTheTreeReadThroughTheMountAndAChainThatClimbsOutIsRefusedBeforeMounting() throws Exception {
    Path model = TestModels.generate(tmp.resolve("model"));
    Files.createDirectories(model.resolve("a/b"));
    Files.createSymbolicLink(model.resolve("a/b/up"), Path.of("../.."));
    Files.createSymbolicLink(model.resolve("ok"), Path.of("a/b/up/config.json"));
    Manifest m = TestModels.push(model, tmp.resolve("origin"), "links:v1");
    try (TestModels.Reading r = TestModels.Reading.open(m, tmp.resolve("origin").toString(), tmp.resolve("c"), ReaderOptions.DEFAULT);
        LazyMount mount = LazyMount.mount(r.reader(), tmp.resolve("mnt"), MountOptions.DEFAULT)) {
      assertThat(Files.readString(mount.mountPoint().resolve("ok"))).isEqualTo("{\"layers\": 4}\n");
    }

    // The same tree with one more link, written straight to the origin as a hostile pusher would.
    Files.createDirectories(tmp.resolve("outside"));
    Files.writeString(tmp.resolve("outside/secret.txt"), "secret\n");
    String json = new String(m.canonicalBytes(), StandardCharsets.UTF_8).replace("\"entries\":[",
        "\"entries\":[{\"path\":\"esc\",\"target\":\"a/b/up/../../outside/secret.txt\",\"type\":\"symlink\"},");
    byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
    String hex = Hashes.sha256Hex(bytes);
    Files.write(tmp.resolve("origin/manifests/" + hex + ".json"), bytes);
    Files.createDirectories(tmp.resolve("origin/tags/evil"));
    Files.writeString(tmp.resolve("origin/tags/evil/v1"), "sha256:" + hex + "\n");
    try (Origin origin = Origins.open(tmp.resolve("origin").toString())) {
      assertThatThrownBy(() -> new ModelStore(origin).resolve(ModelName.parse("evil:v1")))
          .isInstanceOf(ManifestException.class)
          .hasMessageContaining("entry 'esc'")
          .hasMessageContaining("leaves the tree through the link 'a/b/up'");
    }
  }
}
