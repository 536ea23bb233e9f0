package dev.thaw.store;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;

/** An origin in a local (or network-mounted) directory. Writes go to a temp file and are renamed into place. */
final class FileOrigin implements Origin {
  static final String TEMP_PREFIX = ".thaw-tmp-";

  private final Path root;
  private final String uri;

  FileOrigin(Path root) {
    this.root = root.toAbsolutePath().normalize();
    this.uri = this.root.toUri().toString();
  }

  Path root() {
    return root;
  }

  /** The file origin behind {@code origin} (as {@link Origins#open} wraps it), or null for another kind. */
  static FileOrigin of(Origin origin) {
    Origin o = origin instanceof RetryingOrigin r ? r.delegate() : origin;
    return o instanceof FileOrigin f ? f : null;
  }

  /** The temp files of writes in progress, or of writes killed before their rename: no listing shows them. */
  List<ObjectInfo> temporaries() throws OriginException {
    List<ObjectInfo> out = new ArrayList<>();
    if (!Files.isDirectory(root)) {
      return out;
    }
    try {
      Files.walkFileTree(root, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
          if (attrs.isRegularFile() && file.getFileName().toString().startsWith(TEMP_PREFIX)) {
            out.add(new ObjectInfo(root.relativize(file).toString().replace('\\', '/'), attrs.size(), null,
                attrs.lastModifiedTime().toInstant()));
          }
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult visitFileFailed(Path file, IOException e) {
          return FileVisitResult.CONTINUE; // a temp file renamed or removed while the tree was walked
        }
      });
    } catch (IOException e) {
      throw translate("", e);
    }
    out.sort(Comparator.comparing(ObjectInfo::key));
    return out;
  }

  /** Deletes a temp file found by {@link #temporaries()}; never anything else. */
  void deleteTemporary(String key) throws OriginException {
    Path p = path(key);
    if (!p.getFileName().toString().startsWith(TEMP_PREFIX)) {
      throw new IllegalArgumentException("not a temp file: " + urlOf(key));
    }
    try {
      Files.deleteIfExists(p);
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  @Override
  public String uri() {
    return uri;
  }

  @Override
  public boolean writable() {
    return true;
  }

  private Path path(String key) throws OriginException {
    Path p = root.resolve(key).normalize();
    if (!p.startsWith(root) || key.startsWith("/")) {
      throw new OriginException(urlOf(key), OriginException.NO_STATUS, false, "key leaves the origin: " + key, null);
    }
    return p;
  }

  /**
   * A file's version, as S3's ETag is an object's: its size, modification and change times (nanoseconds) and inode.
   * Size and mtime alone miss a same-size rewrite whose mtime was put back; the change time cannot be put back, and a
   * file replaced by a rename has another inode.
   */
  static String version(Path p) throws IOException {
    Map<String, Object> a;
    try {
      a = Files.readAttributes(p, "unix:size,lastModifiedTime,ctime,ino");
    } catch (UnsupportedOperationException notUnix) {
      BasicFileAttributes b = Files.readAttributes(p, BasicFileAttributes.class);
      return b.size() + "-" + nanos(b.lastModifiedTime());
    }
    return a.get("size") + "-" + nanos((FileTime) a.get("lastModifiedTime")) + "-" + nanos((FileTime) a.get("ctime"))
        + "-" + a.get("ino");
  }

  private static long nanos(FileTime t) {
    return t.to(java.util.concurrent.TimeUnit.NANOSECONDS);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
    read(key, offset, dst, ifMatch, ReadProgress.NONE);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch, ReadProgress progress) throws OriginException {
    Path p = path(key);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
      if (ifMatch != null) {
        checkVersion(key, p, ifMatch);
      }
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = ch.read(dst, pos);
        if (n < 0) {
          throw new OriginException(urlOf(key), OriginException.NO_STATUS, false,
              "read of " + urlOf(key) + " ended at byte " + pos + ", before the requested range", null);
        }
        pos += n;
        if (ifMatch == null) { // with a version to match, nothing counts as arrived until it is checked below
          progress.arrived(dst.position());
        }
      }
      if (ifMatch != null) {
        checkVersion(key, p, ifMatch); // the file must not have changed while it was read
        progress.arrived(dst.position());
      }
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  private void checkVersion(String key, Path p, String expected) throws IOException {
    String actual = version(p);
    if (!actual.equals(expected)) {
      throw new OriginException(urlOf(key), 412, false,
          "object changed since it was listed: " + urlOf(key) + " (listed " + expected + ", now " + actual + ")", null);
    }
  }

  @Override
  public byte[] readAll(String key) throws OriginException {
    try {
      return Files.readAllBytes(path(key));
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  @Override
  public Optional<ObjectInfo> stat(String key) throws OriginException {
    try {
      Path p = path(key);
      BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
      return Optional.of(new ObjectInfo(key, a.size(), version(p), a.lastModifiedTime().toInstant()));
    } catch (NoSuchFileException e) {
      return Optional.empty();
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  @Override
  public List<ObjectInfo> list(String prefix) throws OriginException {
    List<ObjectInfo> out = new ArrayList<>();
    int slash = prefix.lastIndexOf('/');
    Path start = slash < 0 ? root : path(prefix.substring(0, slash));
    if (!Files.isDirectory(start)) {
      return out;
    }
    try {
      Files.walkFileTree(start, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
          String key = root.relativize(file).toString().replace('\\', '/');
          if (attrs.isRegularFile() && key.startsWith(prefix) && !file.getFileName().toString().startsWith(TEMP_PREFIX)) {
            String version;
            try {
              version = version(file);
            } catch (NoSuchFileException gone) {
              return FileVisitResult.CONTINUE; // deleted since the directory was read
            }
            out.add(new ObjectInfo(key, attrs.size(), version, attrs.lastModifiedTime().toInstant(), readMode(file)));
          }
          return FileVisitResult.CONTINUE;
        }
      });
    } catch (IOException e) {
      throw translate(prefix, e);
    }
    out.sort(Comparator.comparing(ObjectInfo::key));
    return out;
  }

  @Override
  public void write(String key, ByteBuffer data) throws OriginException {
    Path target = path(key);
    Path tmp = target.resolveSibling(TEMP_PREFIX + Long.toHexString(ThreadLocalRandom.current().nextLong()));
    try {
      Files.createDirectories(target.getParent());
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        while (data.hasRemaining()) {
          ch.write(data);
        }
        ch.force(false);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      try {
        Files.deleteIfExists(tmp);
      } catch (IOException ignored) {
        // the write already failed; the leftover is skipped by list() and removed by gc
      }
      throw translate(key, e);
    }
  }

  @Override
  public void delete(String key) throws OriginException {
    try {
      Files.deleteIfExists(path(key));
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  @Override
  public void touch(String key) throws OriginException {
    try {
      Files.setLastModifiedTime(path(key), FileTime.from(Instant.now()));
    } catch (IOException e) {
      throw translate(key, e);
    }
  }

  private OriginException translate(String key, IOException e) {
    if (e instanceof OriginException oe) {
      return oe;
    }
    String url = urlOf(key);
    if (e instanceof NoSuchFileException) {
      return new OriginException(url, 404, false, "not found: " + url, null);
    }
    if (e instanceof AccessDeniedException) {
      return new OriginException(url, 403, false, "permission denied: " + url, e);
    }
    return new OriginException(url, OriginException.NO_STATUS, false, "I/O error on " + url, e);
  }

  @Override
  public String toString() {
    return uri;
  }

  /** The read bits of a file's mode (0444 where the file system has no POSIX modes). */
  static int readMode(Path file) throws IOException {
    try {
      int mode = 0;
      for (java.nio.file.attribute.PosixFilePermission p : Files.getPosixFilePermissions(file)) {
        mode |= switch (p) {
          case OWNER_READ -> 0400;
          case GROUP_READ -> 0040;
          case OTHERS_READ -> 0004;
          default -> 0;
        };
      }
      return mode;
    } catch (UnsupportedOperationException e) {
      return 0444;
    }
  }
}
