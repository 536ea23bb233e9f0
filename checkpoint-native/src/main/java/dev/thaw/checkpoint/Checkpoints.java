package dev.thaw.checkpoint;

import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * Taking a snapshot end to end, as {@code thaw checkpoint} and the sidecar's API both do: dump the warm server into a
 * fresh owner-only directory (nothing is kept when that fails), keep it under its name, then push it to the store.
 */
public final class Checkpoints {
  private Checkpoints() {}

  /**
   * A snapshot taken: where its images are kept, their size, how long the dump took, what it recorded, and what the
   * push did (null when not pushed).
   */
  public record Taken(String name, Path images, long imageBytes, double dumpSeconds, Snapshots.Metadata metadata,
      SnapshotStore.Pushed pushed) {}

  /** Snapshots the server rooted at {@code pid} as {@code name}; pushes it when {@code push}. */
  public static Taken take(Criu criu, SnapshotStore snapshots, String name, long pid, Snapshots.TakeRequest request,
      boolean push, PushProgress progress) throws IOException {
    Path dir = snapshots.newDumpDirectory(name);
    long t0 = System.nanoTime();
    Snapshots.Metadata m;
    try {
      m = Snapshots.take(criu, pid, dir, request);
    } catch (IOException | RuntimeException e) {
      try {
        snapshots.discard(dir);
      } catch (IOException cleanup) {
        e.addSuppressed(cleanup);
      }
      throw e;
    }
    double dumpS = (System.nanoTime() - t0) / 1e9;
    Path kept = snapshots.keep(name, dir);
    SnapshotStore.Pushed pushed = push ? snapshots.push(name, kept, Pusher.DEFAULT_CHUNK_SIZE, 16, progress) : null;
    return new Taken(name, kept, sizeOf(kept), dumpS, m, pushed);
  }

  /** Bytes of the regular files under {@code dir}. */
  public static long sizeOf(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      long total = 0;
      for (Path p : s.filter(Files::isRegularFile).toList()) {
        total += Files.size(p);
      }
      return total;
    }
  }
}
