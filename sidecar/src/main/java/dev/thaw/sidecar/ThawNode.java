package dev.thaw.sidecar;

import dev.thaw.checkpoint.SnapshotService;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * The node API: what a model server's adapter (Triton's, vLLM's, the Java agent) asks of the Thaw node it runs on. It
 * mounts a model source, prefetches it, follows each cold start's timeline, hears when a server is warm, and takes and
 * restores snapshots. The sidecar's REST API (docs/api.md) is this interface over HTTP: its controllers call it and
 * only map requests and failures; an adapter in the sidecar's JVM calls it directly.
 *
 * <p>Failures are domain exceptions: {@link MountException} (with a {@link MountException.Kind}) for mounts and
 * cold starts, {@link SnapshotService.NoSnapshot} and {@link IOException} for snapshots.
 */
public interface ThawNode {
  /**
   * Mounts {@code request.source()} (NAME[:TAG] or sha256:DIGEST at an origin, or a direct-mode s3:// or file:// URI)
   * under the node's mount root and starts its cold start's timeline; prefetch auto (the recorded profile), all or off.
   */
  MountService.MountInfo mount(MountService.MountRequest request);

  /** Starts prefetching mount {@code mountId}: {@code "profile"} (its recorded access profile) or {@code "all"}. */
  MountService.MountInfo prefetch(String mountId, String mode);

  /** Every mount, with its cache fill and the bytes it read per tier; broken ones say why. */
  List<MountService.Listed> mounts();

  /** One mount. */
  MountService.MountInfo mount(String mountId);

  /** Unmounts, also while files are open. */
  void unmount(String mountId);

  /** Recent cold starts, the most recent first. */
  List<ColdStartLog.ColdStart> coldStarts();

  /** One cold start's timeline. */
  Optional<ColdStartLog.ColdStart> coldStart(String id);

  /**
   * A server is warm: process {@code pid} loaded its model from mount {@code mountId}, or when that is null from the
   * mount holding any of {@code paths}. Marks {@code server_ready} (and {@code first_inference} when it has answered
   * one) on that mount's cold start, and returns it.
   */
  ColdStartLog.ColdStart reportWarm(Warm warm);

  /** What {@link #reportWarm} is told. */
  record Warm(long pid, String mountId, List<Path> paths, boolean firstInference) {}

  /** Takes a snapshot of a warm server (one at a time: each freezes a process tree and fills a disk). */
  SnapshotService.Taken takeSnapshot(SnapshotService.Take take) throws IOException;

  /** Restores a server from its snapshot, or boots it instead and says why; the server runs on after the call. */
  SnapshotService.Restoring restoreSnapshot(SnapshotService.Restore restore) throws IOException;

  /** The snapshots kept on this node, newest first. */
  List<SnapshotService.Local> snapshots() throws IOException;
}
