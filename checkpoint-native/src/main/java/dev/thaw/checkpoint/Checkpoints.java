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

  private static final Path MARKS = Path.of(System.getenv().getOrDefault("TMPDIR", "/tmp"), "thaw-checkpointed");

  /**
   * Leaves word, just before CRIU dumps and stops process {@code pid}, that it is being checkpointed as {@code name},
   * so that {@code thaw run}, which sees only its server exit, says so instead of reporting a crash; {@link
   * #unmarkCheckpointed} takes it back when the dump fails.
   */
  static void markCheckpointed(long pid, String name) {
    try {
      Files.createDirectories(MARKS, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
      Files.writeString(MARKS.resolve(Long.toString(pid)), name + "\n");
    } catch (IOException | UnsupportedOperationException e) {
      // only a message depends on it
    }
  }

  static void unmarkCheckpointed(long pid) {
    try {
      Files.deleteIfExists(MARKS.resolve(Long.toString(pid)));
    } catch (IOException e) {
      // only a message depends on it
    }
  }

  /** When process {@code pid} ended because it was checkpointed: the snapshot's name; the word is taken, once. */
  public static java.util.Optional<String> checkpointedAs(long pid) {
    Path mark = MARKS.resolve(Long.toString(pid));
    try {
      String v = Files.readString(mark).strip();
      Files.deleteIfExists(mark);
      return java.util.Optional.of(v);
    } catch (IOException e) {
      return java.util.Optional.empty();
    }
  }

  /** What a restore came to: the process (restored, or booted instead and why), and where the images came from. */
  public record Restoring(Snapshots.Restored restored, SnapshotStore.Found found, String readyUrl) {}

  /** No snapshot of that name could be restored here, and nothing was booted instead. */
  public static final class NoSnapshot extends IOException {
    private final boolean nothingToBoot;

    NoSnapshot(String message, boolean nothingToBoot, Throwable cause) {
      super(message, cause);
      this.nothingToBoot = nothingToBoot;
    }

    /** True when a fallback was allowed but there was no command to boot. */
    public boolean nothingToBoot() {
      return nothingToBoot;
    }
  }

  /**
   * Restores {@code name}, as {@code thaw restore} and the sidecar's API both do: the snapshot whose key matches
   * {@code here} (this node's copies first, then the store, which authenticates what it fetches; {@code fromOrigin}:
   * the store only), checked and resumed by {@link Snapshots#restore}. When there is none, or it fails, the request's
   * {@link Snapshots.Fallback} boots instead, saying why; with {@link Snapshots.Fallback#NONE} nothing is started and
   * that is an error. {@code keyProblem}, when not null, is why no snapshot key was found: added to a refusal that
   * needed one.
   */
  public static Restoring restore(Criu criu, SnapshotStore snapshots, String name, SnapshotKey here,
      boolean fromOrigin, Snapshots.RestoreRequest request, String keyProblem, SnapshotStore.FetchProgress progress)
      throws IOException {
    SnapshotStore.Found found;
    try {
      found = snapshots.find(name, here, request.expectedModelDigest(), fromOrigin, progress);
    } catch (IOException e) {
      String reason = e.getMessage()
          + (keyProblem != null && e.getMessage().contains("no snapshot key") ? "; " + keyProblem : "");
      // only a record the store authenticated: never a command an origin wrote in clear
      Snapshots.Metadata refused = e instanceof SnapshotStore.UnavailableException u ? u.metadata() : null;
      if (request.fallback().none()) {
        throw new NoSnapshot(reason, false, e);
      }
      java.util.List<String> command = request.fallback().commandFor(refused);
      if (command == null) {
        throw new NoSnapshot(reason + "; and there is no command to boot instead", true, e);
      }
      return new Restoring(Snapshots.coldBoot(command, request.logDir(), reason), null,
          refused != null ? refused.readyUrl() : null);
    }
    Snapshots.Restored r = Snapshots.restore(criu, found.images(), request);
    return new Restoring(r, found, found.metadata().readyUrl());
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
