package dev.thaw.fuse;

import dev.thaw.store.ChunkCache;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** A small model shaped like a real one, pushed to a file origin, and readers over it. */
final class TestModels {
  static final int CHUNK = 64 << 10;

  private TestModels() {}

  static byte[] random(long seed, int n) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  /** Shards across many chunks (one not chunk-aligned), a config, an empty file, a symlink and a deep tree. */
  static Path generate(Path dir) throws IOException {
    Files.createDirectories(dir.resolve("weights"));
    Files.write(dir.resolve("weights/shard-1.bin"), random(1, 40 * CHUNK));
    Files.write(dir.resolve("weights/shard-2.bin"), random(2, 9 * CHUNK + 777));
    Files.writeString(dir.resolve("config.json"), "{\"layers\": 4}\n");
    Files.write(dir.resolve("empty.bin"), new byte[0]);
    Files.createSymbolicLink(dir.resolve("weights/latest.bin"), Path.of("shard-1.bin"));
    Path deep = dir;
    for (int i = 0; i < 12; i++) {
      deep = deep.resolve("d" + i);
    }
    Files.createDirectories(deep);
    Files.writeString(deep.resolve("leaf.txt"), "deep\n");
    return dir;
  }

  static Manifest push(Path model, Path originDir, String name) throws IOException {
    try (Origin o = Origins.open(originDir.toString())) {
      new Pusher(o, CHUNK, 4, PushProgress.NONE).push(model, ModelName.parse(name));
      return new ModelStore(o).resolve(ModelName.parse(name));
    }
  }

  /** A reader, its cache and origin, closed together. */
  record Reading(Origin origin, ChunkCache cache, ModelReader reader) implements AutoCloseable {
    static Reading open(Manifest m, String originUri, Path cacheDir, ReaderOptions options) throws IOException {
      Origin o = Origins.open(originUri);
      ChunkCache c = ChunkCache.open(cacheDir, 1L << 30);
      return new Reading(o, c, ModelReader.open(m, o, c, options));
    }

    @Override
    public void close() throws IOException {
      reader.close();
      cache.close();
      origin.close();
    }
  }
}
