package dev.thaw.store;

import java.nio.ByteBuffer;
import java.nio.file.Path;

/** What {@link ChildJvm} runs: a push, a cache holder, or a reader looping over a model. */
final class ChildMain {
  private ChildMain() {}

  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "push" -> {
        try (Origin o = Origins.open(args[2])) {
          new Pusher(o, Integer.parseInt(args[4]), 2, PushProgress.NONE).push(Path.of(args[1]), ModelName.parse(args[3]));
        }
        System.out.println("pushed");
      }
      case "hold-cache" -> {
        try (ChunkCache cache = ChunkCache.open(Path.of(args[1]), 1 << 30)) {
          System.out.println("holding");
          System.out.flush();
          Thread.sleep(Long.MAX_VALUE);
        }
      }
      case "read-forever" -> {
        try (Origin o = Origins.open(args[1])) {
          Manifest m = new ModelStore(o).resolve(ModelName.parse(args[2]));
          while (true) {
            try (ChunkCache cache = ChunkCache.open(Path.of(args[3]), Long.parseLong(args[4]));
                ModelReader r = ModelReader.open(m, o, cache, ReaderOptions.DEFAULT.withParallelism(4))) {
              ByteBuffer buf = ByteBuffer.allocate(1 << 20);
              for (FileEntry f : m.files()) {
                for (long off = 0; off < f.size(); off += buf.capacity()) {
                  r.read(f, off, buf.clear());
                }
              }
            }
          }
        }
      }
      default -> throw new IllegalArgumentException(args[0]);
    }
  }
}
