package dev.thaw.fuse;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The mount's session with the kernel through libfuse's low-level API (inode numbers, not paths), bound with FFM. Why
 * not the high-level API that jfuse binds: a read's reply can then name the cached chunk's file, and libfuse splices
 * it to the kernel (file to pipe to /dev/fuse) instead of the daemon copying it through a buffer first, which was a
 * quarter of the FUSE threads' time. Bytes a read had to wait for (still arriving from the origin) are replied from
 * memory as before. Every inode is fixed at mount: the tree is the manifest's, immutable.
 */
final class FuseLowLevel implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(FuseLowLevel.class.getName());
  // The largest read request: a reply by splice must fit in a pipe with its header and three pages to spare (libfuse's
  // sizing), and a pipe grows past /proc/sys/fs/pipe-max-size (1 MiB) only with CAP_SYS_RESOURCE, which containers
  // rarely have. At a full 1 MiB libfuse falls back to copying.
  static final int MAX_READ = (1 << 20) - (16 << 10);
  private static final double TIMEOUT_S = 86400; // the tree never changes while mounted

  // errno values (Linux)
  private static final int ENOENT = 2;
  private static final int EIO = 5;
  private static final int EBADF = 9;
  private static final int EISDIR = 21;
  private static final int EROFS = 30;
  private static final int ENOTDIR = 20;
  private static final int EINVAL = 22;

  // struct offsets: x86_64 glibc (struct stat differs on other architectures), libfuse 3.x
  private static final long FI_FLAGS = 0;
  private static final long FI_BITS = 4; // writepage, direct_io, keep_cache, ...: keep_cache is bit 2
  private static final long FI_FH = 16;
  private static final int FI_SIZE = 40;
  private static final int STAT_SIZE = 144;
  private static final int ENTRY_SIZE = 176; // fuse_entry_param: ino, generation, stat, attr_timeout, entry_timeout
  private static final int STATVFS_SIZE = 112;
  private static final int BUF_SIZE = 40; // fuse_buf: size, flags, mem, fd, pos
  private static final int BUFVEC_HEADER = 24; // fuse_bufvec: count, idx, off, then the bufs
  private static final int FUSE_BUF_IS_FD = 1 << 1;
  private static final int FUSE_BUF_FD_SEEK = 1 << 2;
  private static final int FUSE_BUF_SPLICE_MOVE = 1 << 3;
  private static final int FUSE_CAP_SPLICE_WRITE = 1 << 7;
  private static final int FUSE_CAP_SPLICE_MOVE = 1 << 8;
  // The leading function pointers of struct fuse_lowlevel_ops, up to statfs, the last one set: libfuse copies that
  // many and leaves the rest unset (ENOSYS), whatever its version's struct has after them.
  private static final int OPS_COUNT = 25;

  private static final Linker LINKER = Linker.nativeLinker();
  private static final Native NATIVE = new Native();

  private final ModelFileSystem fs;
  // Inode numbers are handed out as paths are first looked up (a manifest may list a file without its directories)
  // and kept for the mount's life: the tree never changes.
  private final Map<Long, String> paths = new ConcurrentHashMap<>();
  private final Map<String, Long> inodes = new ConcurrentHashMap<>();
  private final AtomicLong lastInode = new AtomicLong(1);
  private final Instant mounted = Instant.now();
  private final int uid;
  private final int gid;
  private final Arena arena = Arena.ofShared(); // the ops table, the stubs' and the arguments' memory
  private final MemorySegment session;
  private final MemorySegment loopConfig;
  private final Thread loop;
  private final Path mountPoint;
  private volatile boolean closed;

  /** Negative errno values for {@link ModelFileSystem}, as the kernel's. */
  static ModelFileSystem.Errors errors() {
    return new ModelFileSystem.Errors(-ENOENT, -EIO, -EROFS, -EBADF, -ENOTDIR, -EISDIR, -EINVAL);
  }

  /**
   * Mounts {@code fs} at {@code mountPoint} (an existing, empty directory) and serves it on libfuse's threads.
   *
   * @throws IOException when libfuse cannot be loaded or the mount fails
   */
  static FuseLowLevel mount(ModelFileSystem fs, Path mountPoint, List<String> mountOptions, int uid, int gid)
      throws IOException {
    return new FuseLowLevel(fs, mountPoint, mountOptions, uid, gid);
  }

  private FuseLowLevel(ModelFileSystem fs, Path mountPoint, List<String> mountOptions, int uid, int gid)
      throws IOException {
    NATIVE.require();
    this.fs = fs;
    this.uid = uid;
    this.gid = gid;
    this.mountPoint = mountPoint;
    paths.put(1L, "");
    inodes.put("", 1L);
    try {
      MemorySegment ops = arena.allocate(OPS_COUNT * 8L);
      ops.set(ADDRESS, 0 * 8, stub("init", MethodType.methodType(void.class, MemorySegment.class, MemorySegment.class)));
      ops.set(ADDRESS, 2 * 8, stub("lookup", reqLongAddr()));
      ops.set(ADDRESS, 3 * 8, stub("forget", MethodType.methodType(void.class, MemorySegment.class, long.class, long.class)));
      ops.set(ADDRESS, 4 * 8, stub("getattr", reqLongAddr()));
      ops.set(ADDRESS, 6 * 8, stub("readlink", MethodType.methodType(void.class, MemorySegment.class, long.class)));
      ops.set(ADDRESS, 14 * 8, stub("open", reqLongAddr()));
      ops.set(ADDRESS, 15 * 8, stub("read", MethodType.methodType(void.class, MemorySegment.class, long.class,
          long.class, long.class, MemorySegment.class)));
      ops.set(ADDRESS, 18 * 8, stub("release", reqLongAddr()));
      ops.set(ADDRESS, 20 * 8, stub("opendir", reqLongAddr()));
      ops.set(ADDRESS, 21 * 8, stub("readdir", MethodType.methodType(void.class, MemorySegment.class, long.class,
          long.class, long.class, MemorySegment.class)));
      ops.set(ADDRESS, 22 * 8, stub("releasedir", reqLongAddr()));
      ops.set(ADDRESS, 24 * 8, stub("statfs", MethodType.methodType(void.class, MemorySegment.class, long.class)));

      List<String> argv = new ArrayList<>(List.of("thaw", "-o", String.join(",", mountOptions)));
      MemorySegment argvSeg = arena.allocate(ADDRESS, argv.size() + 1L);
      for (int i = 0; i < argv.size(); i++) {
        argvSeg.setAtIndex(ADDRESS, i, arena.allocateFrom(argv.get(i)));
      }
      MemorySegment args = arena.allocate(24);
      args.set(JAVA_INT, 0, argv.size());
      args.set(ADDRESS, 8, argvSeg);
      args.set(JAVA_INT, 16, 0);
      session = (MemorySegment) NATIVE.sessionNew.invokeExact(args, ops, OPS_COUNT * 8L, MemorySegment.NULL);
      if (session.equals(MemorySegment.NULL)) {
        throw new IOException("libfuse refused the mount options " + mountOptions);
      }
      int rc = (int) NATIVE.sessionMount.invokeExact(session, arena.allocateFrom(mountPoint.toString()));
      if (rc != 0) {
        NATIVE.sessionDestroy.invokeExact(session);
        throw new IOException("fuse_session_mount failed (see libfuse's message above)");
      }
      loopConfig = (MemorySegment) NATIVE.loopCfgCreate.invokeExact();
    } catch (IOException e) {
      arena.close();
      throw e;
    } catch (Throwable e) {
      arena.close();
      throw new IOException("libfuse: " + e, e);
    }
    loop = Thread.ofPlatform().daemon().name("thaw-fuse").start(() -> {
      try {
        int rc = (int) NATIVE.sessionLoopMt.invokeExact(session, loopConfig);
        if (rc != 0 && !closed) {
          LOG.warning(() -> "event=fuse_loop_ended mountpoint=" + mountPoint + " rc=" + rc);
        }
      } catch (Throwable e) {
        LOG.log(Level.SEVERE, "event=fuse_loop_failed mountpoint=" + mountPoint, e);
      }
    });
    // The kernel takes the session's settings (readahead among them) from libfuse's answer to its INIT, after the
    // mount: a first request through the mount waits for that, so what the caller sets next is not overwritten.
    try {
      java.nio.file.Files.readAttributes(mountPoint, java.nio.file.attribute.BasicFileAttributes.class);
    } catch (IOException e) {
      close();
      throw new IOException("the mount at " + mountPoint + " does not answer: " + e.getMessage(), e);
    }
  }

  private static MethodType reqLongAddr() {
    return MethodType.methodType(void.class, MemorySegment.class, long.class, MemorySegment.class);
  }

  private MemorySegment stub(String name, MethodType type) throws ReflectiveOperationException {
    MethodHandle target = MethodHandles.lookup().findVirtual(FuseLowLevel.class, name, type).bindTo(this);
    FunctionDescriptor d = FunctionDescriptor.ofVoid(type.parameterList().stream()
        .map(c -> c == long.class ? (java.lang.foreign.MemoryLayout) JAVA_LONG : ADDRESS)
        .toArray(java.lang.foreign.MemoryLayout[]::new));
    return LINKER.upcallStub(target, d, arena);
  }

  // ------------------------------------------------------------------ operations (on libfuse's threads)
  // Each catches everything: an exception out of an upcall would end the JVM.

  @SuppressWarnings("unused")
  private void init(MemorySegment userdata, MemorySegment conn) {
    try {
      MemorySegment c = conn.reinterpret(128); // struct fuse_conn_info
      int capable = c.get(JAVA_INT, 20);
      c.set(JAVA_INT, 24, c.get(JAVA_INT, 24) | (capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE)));
      c.set(JAVA_INT, 8, MAX_READ); // max_write: libfuse derives the kernel's largest request (max_pages) from it
      c.set(JAVA_INT, 12, MAX_READ); // as the max_read mount option: libfuse refuses the mount when they differ
      c.set(JAVA_INT, 16, 1 << 20);
    } catch (Throwable t) {
      LOG.log(Level.SEVERE, "event=fuse_init_failed mountpoint=" + mountPoint, t);
    }
  }

  @SuppressWarnings("unused")
  private void lookup(MemorySegment req, long parent, MemorySegment name) {
    try {
      String dir = path(parent);
      String n = name.reinterpret(Long.MAX_VALUE).getString(0, StandardCharsets.UTF_8);
      if (dir == null) {
        replyErr(req, ENOENT);
        return;
      }
      Long ino = inodeOf(dir.isEmpty() ? n : dir + "/" + n);
      try (Arena a = Arena.ofConfined()) {
        MemorySegment e = a.allocate(ENTRY_SIZE);
        if (ino != null) {
          e.set(JAVA_LONG, 0, ino);
          fillStat(e.asSlice(16, STAT_SIZE), ino);
          e.set(JAVA_DOUBLE, 160, TIMEOUT_S);
        }
        e.set(JAVA_DOUBLE, 168, TIMEOUT_S); // with ino 0: a cached "no such entry"
        int unused = (int) NATIVE.replyEntry.invokeExact(req, e);
      }
    } catch (Throwable t) {
      failed(req, "lookup", t);
    }
  }

  @SuppressWarnings("unused")
  private void forget(MemorySegment req, long ino, long nlookup) {
    try {
      NATIVE.replyNone.invokeExact(req); // inodes live as long as the mount
    } catch (Throwable t) {
      LOG.log(Level.WARNING, "event=fuse_reply_failed op=forget", t);
    }
  }

  @SuppressWarnings("unused")
  private void getattr(MemorySegment req, long ino, MemorySegment fi) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment st = a.allocate(STAT_SIZE);
      if (!fillStat(st, ino)) {
        replyErr(req, ENOENT);
        return;
      }
      int unused = (int) NATIVE.replyAttr.invokeExact(req, st, TIMEOUT_S);
    } catch (Throwable t) {
      failed(req, "getattr", t);
    }
  }

  @SuppressWarnings("unused")
  private void readlink(MemorySegment req, long ino) {
    try (Arena a = Arena.ofConfined()) {
      String p = path(ino);
      String target = p == null ? null : fs.readlink("/" + p);
      if (target == null) {
        replyErr(req, EINVAL);
        return;
      }
      int unused = (int) NATIVE.replyReadlink.invokeExact(req, a.allocateFrom(target));
    } catch (Throwable t) {
      failed(req, "readlink", t);
    }
  }

  @SuppressWarnings("unused")
  private void open(MemorySegment req, long ino, MemorySegment fiPtr) {
    try {
      MemorySegment fi = fiPtr.reinterpret(FI_SIZE);
      String p = path(ino);
      if (p == null) {
        replyErr(req, ENOENT);
        return;
      }
      long h = fs.open("/" + p, (fi.get(JAVA_INT, FI_FLAGS) & 3) != 0); // O_ACCMODE
      if (h < 0) {
        replyErr(req, (int) -h);
        return;
      }
      fi.set(JAVA_LONG, FI_FH, h);
      fi.set(JAVA_INT, FI_BITS, fi.get(JAVA_INT, FI_BITS) | (1 << 2)); // keep_cache: the bytes never change
      int unused = (int) NATIVE.replyOpen.invokeExact(req, fi);
    } catch (Throwable t) {
      failed(req, "open", t);
    }
  }

  /** A FUSE thread's own reply memory, reused for each read it serves. */
  private static final class ReadScratch {
    final MemorySegment data = Arena.ofAuto().allocate(MAX_READ, 4096);
    final MemorySegment bufvec = Arena.ofAuto().allocate(BUFVEC_HEADER + BUFVEC_CAPACITY * BUF_SIZE, 8);
    final List<long[]> pieces = new ArrayList<>(); // {at, length, fd, position}
  }

  private static final long BUFVEC_CAPACITY = 64; // segments; a read over more small chunks gets a larger one

  private static final ThreadLocal<ReadScratch> SCRATCH = ThreadLocal.withInitial(ReadScratch::new);

  @SuppressWarnings("unused")
  private void read(MemorySegment req, long ino, long size, long offset, MemorySegment fiPtr) {
    ReadScratch s = SCRATCH.get();
    s.pieces.clear();
    try {
      long fh = fiPtr.reinterpret(FI_SIZE).get(JAVA_LONG, FI_FH);
      String p = path(ino);
      ByteBuffer dst = s.data.asSlice(0, Math.min(size, MAX_READ)).asByteBuffer();
      int n = fs.read(fh, p == null ? "?" : "/" + p, offset, dst, (file, position, length, at) -> {
        int fd = NATIVE.openRead(file);
        s.pieces.add(new long[] {at, length, fd, position});
      });
      if (n < 0) {
        replyErr(req, -n);
        return;
      }
      // at most one memory segment before each file piece, and one after the last
      long segments = 2L * s.pieces.size() + 1;
      try (Arena big = segments > BUFVEC_CAPACITY ? Arena.ofConfined() : null) {
        MemorySegment bufvec = big == null ? s.bufvec : big.allocate(BUFVEC_HEADER + segments * BUF_SIZE, 8);
        int count = 0;
        long pos = 0;
        for (long[] piece : s.pieces) {
          if (piece[0] > pos) {
            count = memory(bufvec, count, s.data, pos, piece[0] - pos);
          }
          count = file(bufvec, count, (int) piece[2], piece[3], piece[1]);
          pos = piece[0] + piece[1];
        }
        if (pos < n || count == 0) {
          count = memory(bufvec, count, s.data, pos, n - pos); // with count 0: the end of the file, an empty reply
        }
        bufvec.set(JAVA_LONG, 0, count);
        bufvec.set(JAVA_LONG, 8, 0);
        bufvec.set(JAVA_LONG, 16, 0);
        int unused = (int) NATIVE.replyData.invokeExact(req, bufvec, FUSE_BUF_SPLICE_MOVE);
      }
    } catch (Throwable t) {
      failed(req, "read", t);
    } finally {
      for (long[] piece : s.pieces) {
        NATIVE.close((int) piece[2]);
      }
      s.pieces.clear();
    }
  }

  private static int memory(MemorySegment bufvec, int index, MemorySegment data, long from, long length) {
    MemorySegment b = bufvec.asSlice(BUFVEC_HEADER + (long) index * BUF_SIZE, BUF_SIZE);
    b.set(JAVA_LONG, 0, length);
    b.set(JAVA_INT, 8, 0);
    b.set(ADDRESS, 16, data.asSlice(from));
    b.set(JAVA_INT, 24, -1);
    b.set(JAVA_LONG, 32, 0);
    return index + 1;
  }

  private static int file(MemorySegment bufvec, int index, int fd, long position, long length) {
    MemorySegment b = bufvec.asSlice(BUFVEC_HEADER + (long) index * BUF_SIZE, BUF_SIZE);
    b.set(JAVA_LONG, 0, length);
    b.set(JAVA_INT, 8, FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    b.set(ADDRESS, 16, MemorySegment.NULL);
    b.set(JAVA_INT, 24, fd);
    b.set(JAVA_LONG, 32, position);
    return index + 1;
  }

  @SuppressWarnings("unused")
  private void release(MemorySegment req, long ino, MemorySegment fiPtr) {
    try {
      fs.release(fiPtr.reinterpret(FI_SIZE).get(JAVA_LONG, FI_FH));
      replyErr(req, 0);
    } catch (Throwable t) {
      failed(req, "release", t);
    }
  }

  @SuppressWarnings("unused")
  private void opendir(MemorySegment req, long ino, MemorySegment fiPtr) {
    try {
      String p = path(ino);
      if (p == null || fs.list("/" + p) == null) {
        replyErr(req, p == null ? ENOENT : ENOTDIR);
        return;
      }
      int unused = (int) NATIVE.replyOpen.invokeExact(req, fiPtr.reinterpret(FI_SIZE));
    } catch (Throwable t) {
      failed(req, "opendir", t);
    }
  }

  @SuppressWarnings("unused")
  private void readdir(MemorySegment req, long ino, long size, long offset, MemorySegment fiPtr) {
    try (Arena a = Arena.ofConfined()) {
      String p = path(ino);
      List<String> names = p == null ? null : fs.list("/" + p);
      if (names == null) {
        replyErr(req, p == null ? ENOENT : ENOTDIR);
        return;
      }
      MemorySegment buf = a.allocate(Math.max(size, 1));
      MemorySegment st = a.allocate(STAT_SIZE);
      long used = 0;
      for (long i = offset; i < names.size() + 2L; i++) {
        String name = i == 0 ? "." : i == 1 ? ".." : names.get((int) i - 2);
        Long child = i == 0 ? Long.valueOf(ino) : i == 1 ? parentOf(p) : inodeOf(p.isEmpty() ? name : p + "/" + name);
        if (child == null) {
          continue;
        }
        st.fill((byte) 0);
        st.set(JAVA_LONG, 8, child);
        st.set(JAVA_INT, 24, modeOf(child));
        long need = (long) NATIVE.addDirentry.invokeExact(req, buf.asSlice(used), size - used,
            a.allocateFrom(name), st, i + 1);
        if (need > size - used) {
          break;
        }
        used += need;
      }
      int unused = (int) NATIVE.replyBuf.invokeExact(req, buf, used);
    } catch (Throwable t) {
      failed(req, "readdir", t);
    }
  }

  @SuppressWarnings("unused")
  private void releasedir(MemorySegment req, long ino, MemorySegment fiPtr) {
    replyErr(req, 0);
  }

  @SuppressWarnings("unused")
  private void statfs(MemorySegment req, long ino) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(STATVFS_SIZE);
      v.set(JAVA_LONG, 0, 4096);
      v.set(JAVA_LONG, 8, 4096);
      v.set(JAVA_LONG, 16, (fs.totalBytes() + 4095) / 4096);
      v.set(JAVA_LONG, 40, fs.fileCount());
      v.set(JAVA_LONG, 80, 255);
      int unused = (int) NATIVE.replyStatfs.invokeExact(req, v);
    } catch (Throwable t) {
      failed(req, "statfs", t);
    }
  }

  // ------------------------------------------------------------------ helpers

  private String path(long ino) {
    return paths.get(ino);
  }

  /** The inode of an existing path (numbered at its first lookup), or null when the model has no such entry. */
  private Long inodeOf(String path) {
    Long known = inodes.get(path);
    if (known != null || fs.attributes("/" + path) == null) {
      return known;
    }
    return inodes.computeIfAbsent(path, p -> {
      long ino = lastInode.incrementAndGet();
      paths.put(ino, p);
      return ino;
    });
  }

  private Long parentOf(String p) {
    int slash = p.lastIndexOf('/');
    return slash < 0 ? Long.valueOf(1) : inodeOf(p.substring(0, slash));
  }

  private int modeOf(long ino) {
    ModelFileSystem.Attributes a = fs.attributes("/" + path(ino));
    return a == null ? 0 : typeBits(a.kind()) | (a.mode() & 07555);
  }

  private static int typeBits(ModelFileSystem.Kind k) {
    return switch (k) {
      case FILE -> 0100000;
      case DIRECTORY -> 0040000;
      case SYMLINK -> 0120000;
    };
  }

  /** Fills a struct stat for an inode; false when there is none. */
  private boolean fillStat(MemorySegment st, long ino) {
    String p = path(ino);
    ModelFileSystem.Attributes a = p == null ? null : fs.attributes("/" + p);
    if (a == null) {
      return false;
    }
    st.fill((byte) 0);
    st.set(JAVA_LONG, 8, ino);
    st.set(JAVA_LONG, 16, a.links());
    st.set(JAVA_INT, 24, typeBits(a.kind()) | (a.mode() & 07555)); // read-only: no write bits
    st.set(JAVA_INT, 28, uid);
    st.set(JAVA_INT, 32, gid);
    st.set(JAVA_LONG, 48, a.size());
    st.set(JAVA_LONG, 56, 4096);
    st.set(JAVA_LONG, 64, (a.size() + 511) / 512);
    for (long at : new long[] {72, 88, 104}) { // atime, mtime, ctime: the mount's
      st.set(JAVA_LONG, at, mounted.getEpochSecond());
      st.set(JAVA_LONG, at + 8, mounted.getNano());
    }
    return true;
  }

  private static void replyErr(MemorySegment req, int errno) {
    try {
      int unused = (int) NATIVE.replyErr.invokeExact(req, errno);
    } catch (Throwable t) {
      LOG.log(Level.WARNING, "event=fuse_reply_failed", t);
    }
  }

  private void failed(MemorySegment req, String op, Throwable t) {
    LOG.log(Level.WARNING, "event=fuse_op_failed op=" + op + " mountpoint=" + mountPoint + " errno=EIO cause=" + t, t);
    replyErr(req, EIO);
  }

  /**
   * Ends the session: libfuse unmounts lazily (files still open keep reading until closed) and its loop ends once
   * the kernel lets go, waited for up to 5 s; then its memory is freed. A loop still serving open files is left to end
   * with them.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      NATIVE.sessionExit.invokeExact(session);
      NATIVE.sessionUnmount.invokeExact(session);
      loop.join(java.time.Duration.ofSeconds(5));
      if (!loop.isAlive()) {
        NATIVE.sessionDestroy.invokeExact(session);
        NATIVE.loopCfgDestroy.invokeExact(loopConfig);
        arena.close();
      } else {
        LOG.info(() -> "event=fuse_close_timeout mountpoint=" + mountPoint + " cause=files still open");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Throwable e) {
      LOG.log(Level.WARNING, "event=fuse_close_failed mountpoint=" + mountPoint, e);
    }
  }

  /** libfuse's and libc's functions, looked up once. */
  private static final class Native {
    private final Throwable unavailable;
    MethodHandle sessionNew;
    MethodHandle sessionMount;
    MethodHandle sessionUnmount;
    MethodHandle sessionDestroy;
    MethodHandle sessionExit;
    MethodHandle sessionLoopMt;
    MethodHandle loopCfgCreate;
    MethodHandle loopCfgDestroy;
    MethodHandle replyErr;
    MethodHandle replyNone;
    MethodHandle replyEntry;
    MethodHandle replyAttr;
    MethodHandle replyReadlink;
    MethodHandle replyOpen;
    MethodHandle replyBuf;
    MethodHandle replyData;
    MethodHandle replyStatfs;
    MethodHandle addDirentry;
    MethodHandle open;
    MethodHandle closeFd;

    Native() {
      Throwable failure = null;
      try {
        SymbolLookup fuse = SymbolLookup.libraryLookup(LazyMount.libfusePath(), Arena.global());
        SymbolLookup libc = LINKER.defaultLookup();
        sessionNew = h(fuse, "fuse_session_new", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        sessionMount = h(fuse, "fuse_session_mount", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        sessionUnmount = h(fuse, "fuse_session_unmount", FunctionDescriptor.ofVoid(ADDRESS));
        sessionDestroy = h(fuse, "fuse_session_destroy", FunctionDescriptor.ofVoid(ADDRESS));
        sessionExit = h(fuse, "fuse_session_exit", FunctionDescriptor.ofVoid(ADDRESS));
        sessionLoopMt = h(fuse, "fuse_session_loop_mt_312", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        loopCfgCreate = h(fuse, "fuse_loop_cfg_create", FunctionDescriptor.of(ADDRESS));
        loopCfgDestroy = h(fuse, "fuse_loop_cfg_destroy", FunctionDescriptor.ofVoid(ADDRESS));
        replyErr = h(fuse, "fuse_reply_err", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        replyNone = h(fuse, "fuse_reply_none", FunctionDescriptor.ofVoid(ADDRESS));
        replyEntry = h(fuse, "fuse_reply_entry", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        replyAttr = h(fuse, "fuse_reply_attr", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_DOUBLE));
        replyReadlink = h(fuse, "fuse_reply_readlink", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        replyOpen = h(fuse, "fuse_reply_open", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        replyBuf = h(fuse, "fuse_reply_buf", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
        replyData = h(fuse, "fuse_reply_data", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        replyStatfs = h(fuse, "fuse_reply_statfs", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        addDirentry = h(fuse, "fuse_add_direntry",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG));
        open = LINKER.downcallHandle(libc.find("open").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
        closeFd = LINKER.downcallHandle(libc.find("close").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT));
      } catch (RuntimeException | Error e) {
        failure = e;
      }
      unavailable = failure;
    }

    private static MethodHandle h(SymbolLookup lib, String name, FunctionDescriptor d) {
      return LINKER.downcallHandle(lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError(
          "libfuse 3.12 or later is needed (no " + name + " in " + LazyMount.libfusePath() + ")")), d);
    }

    void require() throws IOException {
      String arch = System.getProperty("os.arch");
      if (!arch.equals("amd64") && !arch.equals("x86_64")) {
        throw new IOException("Thaw's FUSE binding knows libc's struct layouts on x86_64 Linux only; this is " + arch);
      }
      if (unavailable != null) {
        throw new IOException("libfuse 3 is not usable (" + unavailable.getMessage()
            + "); install it: apt-get install fuse3 libfuse3-3", unavailable);
      }
    }

    /** Opens a cached chunk's file read-only; its descriptor outlives an eviction of the file. */
    int openRead(Path file) throws IOException {
      try (Arena a = Arena.ofConfined()) {
        int fd = (int) open.invokeExact(a.allocateFrom(file.toString()), 0x80000 /* O_RDONLY | O_CLOEXEC */, 0);
        if (fd < 0) {
          throw new IOException("cannot open the cached chunk " + file);
        }
        return fd;
      } catch (IOException e) {
        throw e;
      } catch (Throwable t) {
        throw new IOException("cannot open the cached chunk " + file + ": " + t, t);
      }
    }

    void close(int fd) {
      try {
        int unused = (int) closeFd.invokeExact(fd);
      } catch (Throwable t) {
        LOG.log(Level.WARNING, "event=close_failed fd=" + fd, t);
      }
    }
  }
}
