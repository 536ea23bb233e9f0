package dev.thaw.fuse;

import dev.thaw.store.DirectoryEntry;
import dev.thaw.store.Entry;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelReader;
import dev.thaw.store.SymlinkEntry;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Logger;

/**
 * The mount's behaviour, independent of any FUSE binding: paths are FUSE paths ("/" is the model's root), results
 * are values or negative errno codes from {@link Errors}. Thread-safe; every call may come from any FUSE thread.
 */
public final class ModelFileSystem {
  private static final Logger LOG = Logger.getLogger(ModelFileSystem.class.getName());

  /** Negative errno values, as the kernel expects them back. */
  public record Errors(int enoent, int eio, int erofs, int ebadf, int enotdir, int eisdir, int einval) {}

  /** What getattr reports. */
  public record Attributes(Kind kind, int mode, long size, int links) {}

  public enum Kind { FILE, DIRECTORY, SYMLINK }

  private final Manifest manifest;
  private final ModelReader reader;
  private final Errors errors;
  private final ConcurrentHashMap<Long, ModelReader.ModelFile> open = new ConcurrentHashMap<>();
  private final AtomicLong handles = new AtomicLong();
  private final AtomicLong failedReads = new AtomicLong();

  public ModelFileSystem(ModelReader reader, Errors errors) {
    this.manifest = reader.manifest();
    this.reader = reader;
    this.errors = errors;
  }

  public ModelReader reader() {
    return reader;
  }

  /** Reads answered with EIO. */
  public long failedReads() {
    return failedReads.get();
  }

  public int openFiles() {
    return open.size();
  }

  static String relative(String fusePath) {
    if (fusePath.equals("/") || fusePath.isEmpty()) {
      return "";
    }
    return fusePath.startsWith("/") ? fusePath.substring(1) : fusePath;
  }

  /** The entry at a FUSE path, or null. */
  Entry entry(String fusePath) {
    return manifest.entry(relative(fusePath));
  }

  /** Attributes of a path, or null when it does not exist. */
  public Attributes attributes(String fusePath) {
    Entry e = entry(fusePath);
    return switch (e) {
      case null -> null;
      case FileEntry f -> new Attributes(Kind.FILE, f.mode(), f.size(), 1);
      case DirectoryEntry d -> new Attributes(Kind.DIRECTORY, d.mode(), 4096,
          2 + (int) manifest.children(d.path()).stream().filter(c -> c instanceof DirectoryEntry).count());
      case SymlinkEntry s -> new Attributes(Kind.SYMLINK, 0777, s.target().length(), 1);
    };
  }

  /** The names in a directory, or null when the path is not a directory. */
  public List<String> list(String fusePath) {
    Entry e = entry(fusePath);
    if (!(e instanceof DirectoryEntry d)) {
      return null;
    }
    return manifest.children(d.path()).stream().map(Entry::name).toList();
  }

  /** A symlink's target, or null when the path is not a symlink. */
  public String readlink(String fusePath) {
    return entry(fusePath) instanceof SymlinkEntry s ? s.target() : null;
  }

  /**
   * Opens a regular file read-only.
   *
   * @return a handle (>= 0) or a negative errno
   */
  public long open(String fusePath, boolean forWriting) {
    if (forWriting) {
      return errors.erofs();
    }
    Entry e = entry(fusePath);
    if (e == null) {
      return errors.enoent();
    }
    if (!(e instanceof FileEntry)) {
      return errors.eisdir();
    }
    try {
      ModelReader.ModelFile file = reader.open(relative(fusePath));
      long handle = handles.incrementAndGet();
      open.put(handle, file);
      return handle;
    } catch (FileNotFoundException ex) {
      return errors.enoent();
    }
  }

  /**
   * Reads up to {@code dst.remaining()} bytes at {@code offset} of an open file.
   *
   * @return bytes read (0 at the end of the file) or a negative errno; a chunk that cannot be had within the
   *     reader's timeout is EIO, logged with its URL and cause, and other files keep working
   */
  public int read(long handle, String fusePath, long offset, ByteBuffer dst) {
    return read(handle, fusePath, offset, dst, null);
  }

  /**
   * As {@link #read(long, String, long, ByteBuffer)}; with a {@code sink}, cached bytes go to it as regions of their
   * chunk files instead of into {@code dst} ({@link ModelReader.ModelFile#read(long, ByteBuffer,
   * ModelReader.ChunkFileSink)}).
   */
  int read(long handle, String fusePath, long offset, ByteBuffer dst, ModelReader.ChunkFileSink sink) {
    ModelReader.ModelFile file = open.get(handle);
    if (file == null) {
      return errors.ebadf();
    }
    if (offset < 0) {
      return errors.einval();
    }
    try {
      int n = file.read(offset, dst, sink);
      return Math.max(n, 0);
    } catch (IOException | RuntimeException e) {
      failedReads.incrementAndGet();
      LOG.warning(() -> "event=read_failed path=" + fusePath + " offset=" + offset + " errno=EIO cause=" + e.getMessage());
      return errors.eio();
    }
  }

  /**
   * A verified copy of an open file, whole, in the cache, pinned until the lease is closed; or null when there is none
   * yet ({@link ModelReader.ModelFile#wholeFile}).
   */
  dev.thaw.store.ChunkCache.Lease wholeFile(long handle) throws IOException {
    ModelReader.ModelFile file = open.get(handle);
    return file == null ? null : file.wholeFile();
  }

  public int release(long handle) {
    ModelReader.ModelFile file = open.remove(handle);
    if (file == null) {
      return errors.ebadf();
    }
    file.close();
    return 0;
  }

  /** Bytes in all regular files, for statfs. */
  public long totalBytes() {
    return manifest.totalBytes();
  }

  public int fileCount() {
    return manifest.entries().size();
  }
}
