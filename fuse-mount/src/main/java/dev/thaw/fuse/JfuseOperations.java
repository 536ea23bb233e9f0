package dev.thaw.fuse;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.cryptomator.jfuse.api.DirFiller;
import org.cryptomator.jfuse.api.Errno;
import org.cryptomator.jfuse.api.FileInfo;
import org.cryptomator.jfuse.api.FuseConfig;
import org.cryptomator.jfuse.api.FuseConnInfo;
import org.cryptomator.jfuse.api.FuseOperations;
import org.cryptomator.jfuse.api.Stat;
import org.cryptomator.jfuse.api.Statvfs;

/** The thin jfuse adapter: translates jfuse's callbacks to {@link ModelFileSystem} calls and back. */
final class JfuseOperations implements FuseOperations {
  static final int MAX_READ = 1 << 20;

  private final ModelFileSystem fs;
  private final Errno errno;
  private final int uid;
  private final int gid;
  private final Instant mounted = Instant.now();

  JfuseOperations(ModelFileSystem fs, Errno errno, int uid, int gid) {
    this.fs = fs;
    this.errno = errno;
    this.uid = uid;
    this.gid = gid;
  }

  static ModelFileSystem.Errors errors(Errno e) {
    return new ModelFileSystem.Errors(-e.enoent(), -e.eio(), -e.erofs(), -e.ebadf(), -e.enotdir(), -e.eisdir(), -e.einval());
  }

  @Override
  public Errno errno() {
    return errno;
  }

  @Override
  public Set<Operation> supportedOperations() {
    return EnumSet.of(Operation.INIT, Operation.GET_ATTR, Operation.READLINK, Operation.OPEN, Operation.READ,
        Operation.RELEASE, Operation.OPEN_DIR, Operation.READ_DIR, Operation.RELEASE_DIR, Operation.STATFS,
        Operation.DESTROY);
  }

  @Override
  public void init(FuseConnInfo conn, FuseConfig cfg) {
    // Without both max_read here and -o max_read=... at mount, the kernel refuses the mount.
    conn.setMaxRead(MAX_READ);
    conn.setMaxReadahead(MAX_READ);
    conn.setWant(conn.want() | (conn.capable() & FuseConnInfo.FUSE_CAP_ASYNC_READ));
  }

  @Override
  public int getattr(String path, Stat stat, FileInfo fi) {
    ModelFileSystem.Attributes a = fs.attributes(path);
    if (a == null) {
      return -errno.enoent();
    }
    int type = switch (a.kind()) {
      case FILE -> Stat.S_IFREG;
      case DIRECTORY -> Stat.S_IFDIR;
      case SYMLINK -> Stat.S_IFLNK;
    };
    // Read-only: write bits are never reported.
    stat.setMode(type | (a.mode() & 07555));
    stat.setSize(a.size());
    stat.setNLink((short) a.links());
    stat.setUid(uid);
    stat.setGid(gid);
    stat.mTime().set(mounted);
    stat.cTime().set(mounted);
    stat.aTime().set(mounted);
    return 0;
  }

  @Override
  public int readlink(String path, ByteBuffer buf, long len) {
    String target = fs.readlink(path);
    if (target == null) {
      return -errno.einval();
    }
    byte[] b = target.getBytes(StandardCharsets.UTF_8);
    int n = (int) Math.min(b.length, len - 1);
    buf.put(b, 0, n);
    buf.put((byte) 0);
    return 0;
  }

  @Override
  public int open(String path, FileInfo fi) {
    int access = fi.getFlags() & 3; // O_ACCMODE
    long h = fs.open(path, access != 0);
    if (h < 0) {
      return (int) h;
    }
    fi.setFh(h);
    return 0;
  }

  @Override
  public int read(String path, ByteBuffer buf, long size, long offset, FileInfo fi) {
    int want = (int) Math.min(size, buf.capacity() - buf.position());
    buf.limit(buf.position() + want);
    return fs.read(fi.getFh(), path, offset, buf);
  }

  @Override
  public int release(String path, FileInfo fi) {
    return fs.release(fi.getFh());
  }

  @Override
  public int opendir(String path, FileInfo fi) {
    return fs.list(path) == null ? -errno.enotdir() : 0;
  }

  @Override
  public int readdir(String path, DirFiller filler, long offset, FileInfo fi, int flags) {
    List<String> names = fs.list(path);
    if (names == null) {
      return -errno.enotdir();
    }
    try {
      filler.fill(".");
      filler.fill("..");
      for (String name : names) {
        filler.fill(name);
      }
    } catch (java.io.IOException e) {
      return -errno.eio();
    }
    return 0;
  }

  @Override
  public int releasedir(String path, FileInfo fi) {
    return 0;
  }

  @Override
  public int statfs(String path, Statvfs stat) {
    stat.setBsize(4096);
    stat.setFrsize(4096);
    stat.setBlocks((fs.totalBytes() + 4095) / 4096);
    stat.setBfree(0);
    stat.setBavail(0);
    stat.setNameMax(255);
    return 0;
  }
}
