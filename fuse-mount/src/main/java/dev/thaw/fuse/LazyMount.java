package dev.thaw.fuse;

import dev.thaw.store.ModelReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.logging.Logger;

/**
 * A model mounted read-only at a directory: the tree answers at once from the manifest, reads stream through the
 * given {@link ModelReader}. The mount keeps the kernel page cache across opens (content is immutable), uses long
 * entry and attribute timeouts, 1 MiB requests and a multithreaded session. A stale mount left at the directory by a
 * killed process is cleared first; one whose process is stopped is reported, within 5 s,
 * instead of waited on. {@link #close()} unmounts lazily, so files still open keep reading.
 */
public final class LazyMount implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(LazyMount.class.getName());
  private static final String LIBFUSE = "/usr/lib/x86_64-linux-gnu/libfuse3.so.3";

  private final Path mountPoint;
  private final FuseSession session;
  private final ModelFileSystem fs;
  private volatile boolean closed;

  private LazyMount(Path mountPoint, FuseSession session, ModelFileSystem fs) {
    this.mountPoint = mountPoint;
    this.session = session;
    this.fs = fs;
  }

  /** libfuse 3's shared library: Debian's path where it is there, else the loader's search. */
  static String libfusePath() {
    return Files.exists(Path.of(LIBFUSE)) ? LIBFUSE : "libfuse3.so.3";
  }

  /**
   * Mounts {@code reader}'s manifest at {@code mountPoint} (created if missing) and returns once the kernel
   * answers for it.
   *
   * @throws IOException when the directory is in use by a live mount, or the mount fails; the message says why
   */
  public static LazyMount mount(ModelReader reader, Path mountPoint, MountOptions options) throws IOException {
    Path mnt = mountPoint.toAbsolutePath().normalize();
    MountTable.Health health = MountTable.probe(mnt, MountTable.PROBE_TIMEOUT);
    if (health == MountTable.Health.UNRESPONSIVE) {
      String what = MountTable.find(mnt).map(i -> " (" + i.fsType() + " from " + i.source() + ")").orElse("");
      throw new IOException(mnt + " is a FUSE mount" + what + " whose daemon has not answered within "
          + MountTable.PROBE_TIMEOUT.toSeconds() + " s: it is stopped (SIGSTOP, a debugger) or hung. Resume or kill that "
          + "process, or detach the mount: fusermount3 -u -z " + mnt);
    }
    if (health == MountTable.Health.STALE) {
      LOG.warning(() -> "event=stale_mount_cleared mountpoint=" + mnt);
      try {
        MountTable.abort(mnt); // frees a half-dead daemon whose own thread still waits on the mount
      } catch (IOException notRoot) {
        // unmounting below is what matters
      }
      MountTable.unmount(mnt, true);
    }
    Optional<MountTable.MountInfo> existing = MountTable.find(mnt);
    if (existing.isPresent()) {
      throw new IOException(mnt + " is already a mount point (" + existing.get().fsType() + " from "
          + existing.get().source() + "); unmount it first (thaw unmount " + mnt + ")");
    }
    Files.createDirectories(mnt);
    if (!Files.isDirectory(mnt)) {
      throw new IOException("mount point " + mnt + " is not a directory");
    }
    com.sun.security.auth.module.UnixSystem me = new com.sun.security.auth.module.UnixSystem();
    ModelFileSystem fs = new ModelFileSystem(reader, FuseSession.errors());
    List<String> opts = new ArrayList<>(List.of("ro", "default_permissions", "max_read=" + FuseSession.MAX_READ,
        "fsname=" + options.name().replace(",", "_"), "subtype=thaw"));
    if (options.allowOther()) {
      opts.add("allow_other");
    }
    FuseSession session;
    try {
      session = FuseSession.mount(fs, mnt, opts, options.passthrough(), (int) me.getUid(), (int) me.getGid());
    } catch (IOException e) {
      throw new IOException("cannot mount at " + mnt + ": " + e.getMessage() + " (is /dev/fuse there and fuse3 installed?)", e);
    }
    LazyMount m = new LazyMount(mnt, session, fs);
    m.raiseReadahead(options.readaheadKb());
    return m;
  }

  private void raiseReadahead(int kb) {
    if (kb <= 0) {
      return;
    }
    try {
      Optional<MountTable.MountInfo> info = MountTable.find(mountPoint);
      if (info.isPresent()) {
        Path ra = Path.of("/sys/class/bdi", info.get().device(), "read_ahead_kb");
        Files.writeString(ra, Integer.toString(kb));
      }
    } catch (IOException | RuntimeException e) {
      // Not fatal: reads still work, in 128 KiB requests.
      LOG.info(() -> "event=readahead_unchanged mountpoint=" + mountPoint + " cause=" + e.getMessage());
    }
  }

  public Path mountPoint() {
    return mountPoint;
  }

  public ModelReader reader() {
    return fs.reader();
  }

  public ModelFileSystem fileSystem() {
    return fs;
  }

  /** Opens whose reads the kernel served from a whole-file copy in the cache (FUSE passthrough), not through Thaw. */
  public long passthroughOpens() {
    return session.passthroughOpens();
  }

  /** True while the kernel still lists the mount (false once unmounted, from here or from outside). */
  public boolean isMounted() {
    try {
      return !closed && MountTable.find(mountPoint).isPresent();
    } catch (IOException e) {
      return false;
    }
  }

  /** Unmounts (lazily: open files keep working until closed) and ends the FUSE session. */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    IOException failure = null;
    // libfuse unmounts with MNT_DETACH (a lazy unmount: files still open keep reading until closed) and the session's
    // threads end once the kernel lets go.
    session.close();
    try {
      if (MountTable.find(mountPoint).isPresent()) {
        MountTable.unmount(mountPoint, true);
      }
    } catch (IOException e) {
      failure = e;
    }
    if (failure != null) {
      throw failure;
    }
  }
}
