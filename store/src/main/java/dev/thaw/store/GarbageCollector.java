package dev.thaw.store;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Deletes chunks at an origin that no manifest references and that are older than a grace period. The grace
 * period protects pushes running at the same time: they upload chunks before their manifest exists, and touch
 * old chunks they reuse, so a push shorter than the grace period is never broken. A manifest that cannot be read
 * stops the collection before anything is deleted. On a {@code file://} origin, the temp files that killed writes
 * left (older than the grace period) are deleted too.
 */
public final class GarbageCollector {
  private final Origin origin;
  private final Clock clock;

  public GarbageCollector(Origin origin, Clock clock) {
    this.origin = origin;
    this.clock = clock;
  }

  /**
   * @param candidates unreferenced chunks older than the grace period (deleted unless a dry run)
   * @param youngUnreferenced unreferenced chunks kept because they are within the grace period
   * @param temporaries temp files of a {@code file://} origin's writes, killed before their rename, older than the
   *     grace period (deleted unless a dry run); a write in progress is younger and kept
   */
  public record Result(int manifests, int chunks, List<ObjectInfo> candidates, long candidateBytes, int youngUnreferenced,
      List<ObjectInfo> temporaries, boolean dryRun) {
    public long temporaryBytes() {
      return temporaries.stream().mapToLong(ObjectInfo::size).sum();
    }
  }

  public Result collect(Duration grace, boolean dryRun) throws OriginException {
    if (!origin.writable() && !dryRun) {
      throw new IllegalArgumentException("cannot collect garbage at " + origin.uri() + ": the origin is read-only");
    }
    Instant cutoff = clock.instant().minus(grace);
    ModelStore store = new ModelStore(origin);
    Set<String> referenced = new HashSet<>();
    List<ObjectInfo> manifests = origin.list("manifests/");
    for (ObjectInfo m : manifests) {
      String name = m.key().substring("manifests/".length());
      if (!name.endsWith(".json")) {
        continue;
      }
      Manifest manifest = store.load(name.substring(0, name.length() - ".json".length()));
      for (FileEntry f : manifest.files()) {
        for (ChunkRef c : f.chunks()) {
          referenced.add(c.hash());
        }
      }
    }
    List<ObjectInfo> chunks = origin.list("chunks/");
    List<ObjectInfo> candidates = new ArrayList<>();
    long bytes = 0;
    int young = 0;
    for (ObjectInfo c : chunks) {
      String hash = c.key().substring(c.key().lastIndexOf('/') + 1);
      if (referenced.contains(hash)) {
        continue;
      }
      if (!c.lastModified().isBefore(cutoff)) {
        young++;
        continue;
      }
      if (!dryRun) {
        // Look again just before deleting: a push may have touched it since the listing.
        Optional<ObjectInfo> now = origin.stat(c.key());
        if (now.isEmpty() || !now.get().lastModified().isBefore(cutoff)) {
          continue;
        }
        origin.delete(c.key());
      }
      candidates.add(c);
      bytes += c.size();
    }
    return new Result(manifests.size(), chunks.size(), candidates, bytes, young, temporaries(cutoff, dryRun), dryRun);
  }

  /** A killed push leaves its temp files behind: those older than the cutoff go; a live write's is younger. */
  private List<ObjectInfo> temporaries(Instant cutoff, boolean dryRun) throws OriginException {
    FileOrigin files = FileOrigin.of(origin);
    List<ObjectInfo> old = new ArrayList<>();
    if (files == null) {
      return old; // S3 and HTTP writes are atomic PUTs: they leave no temp objects
    }
    for (ObjectInfo t : files.temporaries()) {
      if (t.lastModified().isBefore(cutoff)) {
        if (!dryRun) {
          files.deleteTemporary(t.key());
        }
        old.add(t);
      }
    }
    return old;
  }
}
