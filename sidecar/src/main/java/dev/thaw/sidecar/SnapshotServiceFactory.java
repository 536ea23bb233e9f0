package dev.thaw.sidecar;

import dev.thaw.checkpoint.ExternalMounts;
import dev.thaw.checkpoint.SnapshotService;
import io.micronaut.context.annotation.Factory;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The sidecar's one {@link SnapshotService}, built from its configuration: what its API takes and restores, and what
 * its cluster member fetches ahead and registers. A restore whose server read its model through a Thaw mount this node
 * lacks has this sidecar mount that model again, at the same path, which must be under its mount root.
 */
@Factory
final class SnapshotServiceFactory {
  @Singleton
  SnapshotService snapshots(SidecarConfig config, MountService mounts) {
    return SnapshotService.builder(config.getSnapshots(), config.getOrigin(), Sidecar.version())
        .keyFile(config.getSnapshotKeyFile()).parallelism(config.getParallelism())
        .fallback(SnapshotService.Fallback.givenOrRecorded(config.getFallbackCommand()))
        .mounts(m -> mountForRestore(config, mounts, m)).build();
  }

  private static void mountForRestore(SidecarConfig config, MountService mounts, ExternalMounts.ExternalMount m)
      throws IOException {
    Path root = config.getMountRoot().toAbsolutePath().normalize();
    Path at = Path.of(m.path());
    String what = m.thawDigest() != null ? m.thawDigest() : m.thawSource();
    if (!at.startsWith(root) || at.equals(root)) {
      throw new IOException("the snapshot's server read " + what + " through a Thaw mount at " + at + ", outside this"
          + " sidecar's mount root " + root + ": mount it there (thaw mount " + what + " " + at + "), then restore again");
    }
    try {
      mounts.mount(new MountService.MountRequest(what, null, root.relativize(at).toString(), "auto"));
    } catch (MountException e) {
      throw new IOException("could not mount " + what + " at " + at + " for the restore: " + e.getMessage(), e);
    }
  }
}
