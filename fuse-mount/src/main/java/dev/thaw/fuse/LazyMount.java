package dev.thaw.fuse;

import dev.thaw.store.ModelReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeoutException;
import java.util.logging.Logger;
import org.cryptomator.jfuse.api.Fuse;
import org.cryptomator.jfuse.api.FuseBuilder;
import org.cryptomator.jfuse.api.FuseMountFailedException;

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
  private final Fuse fuse;
  private final ModelFileSystem fs;
  private volatile boolean closed;

  private LazyMount(Path mountPoint, Fuse fuse, ModelFileSystem fs) {
    this.mountPoint = mountPoint;
    this.fuse = fuse;
    this.fs = fs;
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
    FuseBuilder builder = FuseBuilder.getSupported();
    if (Files.exists(Path.of(LIBFUSE))) {
      builder.setLibraryPath(LIBFUSE);
    }
    ModelFileSystem fs = new ModelFileSystem(reader, JfuseOperations.errors(builder.errno()));
    com.sun.security.auth.module.UnixSystem me = new com.sun.security.auth.module.UnixSystem();
    Fuse fuse;
    try {
      fuse = builder.build(new JfuseOperations(fs, builder.errno(), (int) me.getUid(), (int) me.getGid()));
    } catch (UnsatisfiedLinkError e) {
      throw new IOException("libfuse 3 is not installed (" + e.getMessage() + "); install it: apt-get install fuse3 libfuse3-3", e);
    }
    List<String> flags = new ArrayList<>(List.of(
        "-o", "ro",
        "-o", "default_permissions",
        "-o", "kernel_cache",
        "-o", "max_read=" + JfuseOperations.MAX_READ,
        "-o", "entry_timeout=86400",
        "-o", "attr_timeout=86400",
        "-o", "negative_timeout=86400",
        "-o", "fsname=" + options.name().replace(",", "_"),
        "-o", "subtype=thaw"));
    if (options.allowOther()) {
      flags.addAll(List.of("-o", "allow_other"));
    }
    try {
      fuse.mount("thaw", mnt, flags.toArray(String[]::new));
    } catch (FuseMountFailedException e) {
      closeQuietly(fuse);
      throw new IOException("cannot mount at " + mnt + ": " + e.getMessage()
          + " (is /dev/fuse there and fuse3 installed?)", e);
    }
    LazyMount m = new LazyMount(mnt, fuse, fs);
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
    // libfuse unmounts with MNT_DETACH (a lazy unmount: files still open keep reading until closed) and ends the
    // session loop; unmounting behind its back instead leaves the loop running.
    closeQuietly(fuse);
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

  private static void closeQuietly(Fuse fuse) {
    try {
      fuse.close();
    } catch (TimeoutException | RuntimeException e) {
      LOG.info(() -> "event=fuse_close_timeout cause=" + e);
    }
  }
}
