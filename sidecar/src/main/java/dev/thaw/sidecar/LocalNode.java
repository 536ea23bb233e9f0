package dev.thaw.sidecar;

import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.store.PushProgress;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.util.List;
import java.util.Optional;

/** This machine as a {@link ThawNode}: its mounts, its cold starts' timelines and its snapshots. */
@Singleton
final class LocalNode implements ThawNode {
  private final MountService mounts;
  private final SnapshotService snapshots;
  private final ColdStartLog coldStarts;
  private final Object snapshotting = new Object(); // one dump or restore at a time

  LocalNode(MountService mounts, SnapshotService snapshots, ColdStartLog coldStarts) {
    this.mounts = mounts;
    this.snapshots = snapshots;
    this.coldStarts = coldStarts;
  }

  @Override
  public MountService.MountInfo mount(MountService.MountRequest request) {
    return mounts.mount(request);
  }

  @Override
  public MountService.MountInfo prefetch(String mountId, String mode) {
    return mounts.prefetch(mountId, mode);
  }

  @Override
  public List<MountService.Listed> mounts() {
    return mounts.list();
  }

  @Override
  public MountService.MountInfo mount(String mountId) {
    return mounts.get(mountId);
  }

  @Override
  public void unmount(String mountId) {
    mounts.unmount(mountId);
  }

  @Override
  public List<ColdStartLog.ColdStart> coldStarts() {
    return coldStarts.recent();
  }

  @Override
  public Optional<ColdStartLog.ColdStart> coldStart(String id) {
    return coldStarts.find(id);
  }

  @Override
  public ColdStartLog.ColdStart reportWarm(Warm warm) {
    if (warm.pid() < 1) {
      throw MountException.invalid("pid", "pid is required: the warm server's process id");
    }
    String mountId = warm.mountId();
    if (mountId == null) {
      if (warm.paths() == null || warm.paths().isEmpty()) {
        throw MountException.invalid("paths", "say which model the server loaded: mount (an id) or paths (files it read)");
      }
      mountId = warm.paths().stream().map(mounts::mountHolding).flatMap(Optional::stream).findFirst()
          .orElseThrow(() -> new MountException(MountException.Kind.NOT_FOUND, "paths", "no mount holds any of "
              + warm.paths()));
    }
    String id = mountId;
    ColdStartLog.ColdStart cs = mounts.coldStartOf(id)
        .orElseThrow(() -> new MountException(MountException.Kind.NOT_FOUND, "mount", "no mount " + id));
    cs.mark("server_ready");
    if (warm.firstInference()) {
      cs.mark("first_inference");
    }
    return cs;
  }

  @Override
  public SnapshotService.Taken takeSnapshot(SnapshotService.Take take) throws IOException {
    synchronized (snapshotting) {
      return snapshots.take(take, PushProgress.NONE);
    }
  }

  @Override
  public SnapshotService.Restoring restoreSnapshot(SnapshotService.Restore restore) throws IOException {
    synchronized (snapshotting) {
      return snapshots.restore(restore, SnapshotService.FetchProgress.NONE);
    }
  }

  @Override
  public List<SnapshotService.Local> snapshots() throws IOException {
    return snapshots.list();
  }
}
