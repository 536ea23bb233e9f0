package dev.thaw.fuse;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.thaw.store.ChunkCache;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The mount's session with the kernel: libfuse mounts (it knows fusermount3 for unprivileged users), and this class
 * speaks the kernel's FUSE protocol on the session's {@code /dev/fuse} descriptor itself, through FFM. Why not
 * libfuse's request loop: Debian 12's libfuse (3.14) cannot ask for FUSE passthrough (3.16 can), and passthrough is
 * what lets the kernel read a complete, verified file straight from its whole-file copy in the cache, at disk and
 * page-cache speed with no daemon work. Files not yet complete are served by this process: cached chunks replied by
 * splice from their files, bytes still arriving from memory. Inodes are numbered at first lookup and kept for the
 * mount's life: the tree is the manifest's, immutable.
 */
final class FuseSession implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(FuseSession.class.getName());
  // The largest read request: a reply by splice must fit in a pipe with its header and a few pages to spare, and a
  // pipe grows past /proc/sys/fs/pipe-max-size (1 MiB) only with CAP_SYS_RESOURCE, which containers rarely have.
  static final int MAX_READ = (1 << 20) - (16 << 10);
  private static final long TIMEOUT_S = 86400; // the tree never changes while mounted
  private static final int MAX_THREADS = 16; // requests waiting on the origin each hold one
  private static final int REQUEST_BUFFER = 256 << 10; // > max_write + headers; larger requests fail with EIO
  private static final Duration RELEASE_WAIT = Duration.ofMillis(50);

  // errno values (Linux)
  private static final int ENOENT = 2;
  private static final int EINTR = 4;
  private static final int EIO = 5;
  private static final int EBADF = 9;
  private static final int EAGAIN = 11;
  private static final int EPERM = 1;
  private static final int ENODEV = 19;
  private static final int ENOTDIR = 20;
  private static final int EISDIR = 21;
  private static final int EINVAL = 22;
  private static final int EROFS = 30;
  private static final int ENOSYS = 38;

  // opcodes (include/uapi/linux/fuse.h)
  private static final int LOOKUP = 1;
  private static final int FORGET = 2;
  private static final int GETATTR = 3;
  private static final int READLINK = 5;
  private static final int OPEN = 14;
  private static final int READ = 15;
  private static final int STATFS = 17;
  private static final int RELEASE = 18;
  private static final int INIT = 26;
  private static final int OPENDIR = 27;
  private static final int READDIR = 28;
  private static final int RELEASEDIR = 29;
  private static final int INTERRUPT = 36;
  private static final int DESTROY = 38;
  private static final int BATCH_FORGET = 42;
  // changes to the tree: a read-only mount is refused them by the kernel first; answered EROFS all the same
  private static final java.util.Set<Integer> WRITES = java.util.Set.of(4, 6, 8, 9, 10, 11, 12, 13, 16, 21, 24, 35, 43,
      45, 47, 51, 53);

  // INIT flags
  private static final long ASYNC_READ = 1L;
  private static final long BIG_WRITES = 1L << 5;
  private static final long ASYNC_DIO = 1L << 15;
  private static final long PARALLEL_DIROPS = 1L << 18;
  private static final long MAX_PAGES = 1L << 22;
  private static final long CACHE_SYMLINKS = 1L << 23;
  private static final long INIT_EXT = 1L << 30;
  private static final long PASSTHROUGH = 1L << 37;
  private static final int PROTOCOL_MINOR = 40; // fuse_open_out.backing_id, fuse_init_out.max_stack_depth

  // open reply flags
  private static final int FOPEN_KEEP_CACHE = 1 << 1;
  private static final int FOPEN_CACHE_DIR = 1 << 3;
  private static final int FOPEN_PASSTHROUGH = 1 << 7;

  private static final long IOC_BACKING_OPEN = 0x4010E501L; // _IOW(229, 1, struct fuse_backing_map)
  private static final long IOC_BACKING_CLOSE = 0x4004E502L; // _IOW(229, 2, uint32_t)
  private static final int IN_HEADER = 40;
  private static final int OUT_HEADER = 16;
  private static final int ATTR_SIZE = 88;

  private static final Linker LINKER = Linker.nativeLinker();
  private static final Native NATIVE = new Native();

  private final ModelFileSystem fs;
  // Inode numbers are handed out as paths are first looked up (a manifest may list a file without its directories)
  // and kept for the mount's life: the tree never changes.
  private final Map<Long, String> paths = new ConcurrentHashMap<>();
  private final Map<String, Long> inodes = new ConcurrentHashMap<>();
  private final AtomicLong lastInode = new AtomicLong(1);
  private final Map<Long, InodeIo> io = new ConcurrentHashMap<>();
  private final Map<Long, Long> handleInodes = new ConcurrentHashMap<>();
  private final java.util.Set<Long> passthroughHandles = ConcurrentHashMap.newKeySet();
  private final AtomicLong passthroughOpens = new AtomicLong();
  private final Instant mounted = Instant.now();
  private final int uid;
  private final int gid;
  private final Arena arena = Arena.ofShared();
  private final MemorySegment session;
  private final int fd;
  private final Path mountPoint;
  private final List<Thread> threads = new ArrayList<>();
  private final AtomicInteger idle = new AtomicInteger();
  private final boolean passthroughWanted;
  private volatile boolean passthrough; // as wanted and agreed with the kernel at INIT
  private volatile boolean closed;

  /**
   * How an inode's open files are served. The kernel wants every open of an inode in one mode at a time: while one
   * is open through the daemon (its pages cached in the FUSE inode), a passthrough open fails, and while passthrough
   * files are open, all others must be passthrough to the same backing file.
   */
  private static final class InodeIo {
    int cachedOpens;
    int passthroughOpens;
    int backingId;
    ChunkCache.Lease copy; // pins the whole-file copy while the kernel reads it
    boolean waitedInVain; // for the release of files open through Thaw: not again until they are all released

  }

  /** Negative errno values for {@link ModelFileSystem}, as the kernel's. */
  static ModelFileSystem.Errors errors() {
    return new ModelFileSystem.Errors(-ENOENT, -EIO, -EROFS, -EBADF, -ENOTDIR, -EISDIR, -EINVAL);
  }

  /**
   * Mounts {@code fs} at {@code mountPoint} (an existing, empty directory) and serves it; returns once the kernel has
   * its answer to INIT.
   *
   * @throws IOException when libfuse cannot be loaded or the mount fails
   */
  static FuseSession mount(ModelFileSystem fs, Path mountPoint, List<String> mountOptions, boolean passthrough,
      int uid, int gid) throws IOException {
    return new FuseSession(fs, mountPoint, mountOptions, passthrough, uid, gid);
  }

  private FuseSession(ModelFileSystem fs, Path mountPoint, List<String> mountOptions, boolean passthrough, int uid,
      int gid) throws IOException {
    NATIVE.require();
    this.fs = fs;
    this.passthroughWanted = passthrough;
    this.uid = uid;
    this.gid = gid;
    this.mountPoint = mountPoint;
    paths.put(1L, "");
    inodes.put("", 1L);
    try {
      MemorySegment noOps = arena.allocate(64); // libfuse's own request loop is never run
      List<String> argv = new ArrayList<>(List.of("thaw", "-o", String.join(",", mountOptions)));
      MemorySegment argvSeg = arena.allocate(ADDRESS, argv.size() + 1L);
      for (int i = 0; i < argv.size(); i++) {
        argvSeg.setAtIndex(ADDRESS, i, arena.allocateFrom(argv.get(i)));
      }
      MemorySegment args = arena.allocate(24);
      args.set(JAVA_INT, 0, argv.size());
      args.set(ADDRESS, 8, argvSeg);
      args.set(JAVA_INT, 16, 0);
      session = (MemorySegment) NATIVE.sessionNew.invokeExact(args, noOps, 64L, MemorySegment.NULL);
      if (session.equals(MemorySegment.NULL)) {
        throw new IOException("libfuse refused the mount options " + mountOptions);
      }
      int rc = (int) NATIVE.sessionMount.invokeExact(session, arena.allocateFrom(mountPoint.toString()));
      if (rc != 0) {
        NATIVE.sessionDestroy.invokeExact(session);
        throw new IOException("fuse_session_mount failed (see libfuse's message above)");
      }
      fd = (int) NATIVE.sessionFd.invokeExact(session);
    } catch (IOException e) {
      arena.close();
      throw e;
    } catch (Throwable e) {
      arena.close();
      throw new IOException("libfuse: " + e, e);
    }
    startThread();
    // The kernel takes the session's settings (readahead among them) from the answer to its INIT, after the mount: a
    // first request through the mount waits for that, so what the caller sets next is not overwritten.
    try {
      java.nio.file.Files.readAttributes(mountPoint, java.nio.file.attribute.BasicFileAttributes.class);
    } catch (IOException e) {
      close();
      throw new IOException("the mount at " + mountPoint + " does not answer: " + e.getMessage(), e);
    }
  }

  /** Files opened so far whose reads the kernel served from a whole-file copy, not through this process. */
  long passthroughOpens() {
    return passthroughOpens.get();
  }

  private void startThread() {
    synchronized (threads) {
      if (closed || threads.size() >= MAX_THREADS) {
        return;
      }
      threads.add(Thread.ofPlatform().daemon().name("thaw-fuse-" + threads.size()).start(this::serve));
    }
  }

  // ------------------------------------------------------------------ the request loop (one per thread)

  /** A thread's own memory: the request, the reply, the errno slot and the pipe for replies by splice. */
  private static final class Worker {
    final Arena arena = Arena.ofShared(); // a read's bytes may be copied in by a fetching thread
    final MemorySegment request = arena.allocate(REQUEST_BUFFER, 4096);
    final MemorySegment reply = arena.allocate(OUT_HEADER + (long) MAX_READ, 4096); // header, then data
    final MemorySegment errno = arena.allocate(Linker.Option.captureStateLayout());
    final MemorySegment offset = arena.allocate(JAVA_LONG);
    final List<long[]> pieces = new ArrayList<>(); // {at, length, fd, position}
    int pipeRead = -1;
    int pipeWrite = -1;

    int errno() {
      return (int) ERRNO.get(errno, 0L);
    }
  }

  private static final VarHandle ERRNO = Linker.Option.captureStateLayout()
      .varHandle(MemoryLayout.PathElement.groupElement("errno"));

  private void serve() {
    Worker w = new Worker();
    try {
      while (!closed) {
        idle.incrementAndGet();
        long n = (long) NATIVE.read.invokeExact(w.errno, fd, w.request, (long) REQUEST_BUFFER);
        if (idle.decrementAndGet() == 0) {
          startThread(); // every other thread is busy (or waiting on the origin): one more takes the next request
        }
        if (n < 0) {
          int e = w.errno();
          if (e == ENOENT || e == EINTR || e == EAGAIN) {
            continue; // a request interrupted before it was read; or a signal
          }
          if (e != ENODEV && !closed) {
            LOG.warning(() -> "event=fuse_read_failed mountpoint=" + mountPoint + " errno=" + e);
          }
          break; // ENODEV: unmounted
        }
        if (n < IN_HEADER) {
          continue;
        }
        handle(w);
      }
    } catch (Throwable t) {
      LOG.log(Level.SEVERE, "event=fuse_loop_failed mountpoint=" + mountPoint, t);
    } finally {
      NATIVE.closePipe(w);
      w.arena.close();
    }
  }

  private void handle(Worker w) {
    MemorySegment in = w.request;
    int opcode = in.get(JAVA_INT, 4);
    long unique = in.get(JAVA_LONG, 8);
    long node = in.get(JAVA_LONG, 16);
    MemorySegment arg = in.asSlice(IN_HEADER, in.get(JAVA_INT, 0) - IN_HEADER);
    try {
      switch (opcode) {
        case INIT -> init(w, unique, arg);
        case LOOKUP -> lookup(w, unique, node, arg.getString(0, StandardCharsets.UTF_8));
        case FORGET, BATCH_FORGET, INTERRUPT -> { } // inodes live as long as the mount; no reply is expected
        case GETATTR -> getattr(w, unique, node);
        case READLINK -> readlink(w, unique, node);
        case OPEN -> open(w, unique, node, arg.get(JAVA_INT, 0));
        case READ -> read(w, unique, node, arg.get(JAVA_LONG, 0), arg.get(JAVA_LONG, 8), arg.get(JAVA_INT, 16));
        case RELEASE -> release(w, unique, arg.get(JAVA_LONG, 0));
        case OPENDIR -> opendir(w, unique, node);
        case READDIR -> readdir(w, unique, node, arg.get(JAVA_LONG, 8), arg.get(JAVA_INT, 16));
        case RELEASEDIR, DESTROY -> reply(w, unique, 0, 0);
        case STATFS -> statfs(w, unique);
        default -> reply(w, unique, WRITES.contains(opcode) ? EROFS : ENOSYS, 0);
      }
    } catch (Throwable t) {
      LOG.log(Level.WARNING, "event=fuse_op_failed opcode=" + opcode + " mountpoint=" + mountPoint
          + " errno=EIO cause=" + t, t);
      reply(w, unique, EIO, 0);
    }
  }

  // ------------------------------------------------------------------ operations

  private void init(Worker w, long unique, MemorySegment in) {
    int major = in.get(JAVA_INT, 0);
    int minor = in.get(JAVA_INT, 4);
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 64);
    out.fill((byte) 0);
    out.set(JAVA_INT, 0, 7);
    if (major != 7) { // a newer major: answer ours and wait for the kernel's INIT in it
      reply(w, unique, 0, 8);
      return;
    }
    long kernel = in.get(JAVA_INT, 12) & 0xFFFFFFFFL;
    if (minor >= 36 && (kernel & INIT_EXT) != 0) {
      kernel |= (in.get(JAVA_INT, 16) & 0xFFFFFFFFL) << 32;
    }
    long want = ASYNC_READ | BIG_WRITES | ASYNC_DIO | PARALLEL_DIROPS | MAX_PAGES | CACHE_SYMLINKS | INIT_EXT;
    if (minor >= PROTOCOL_MINOR && passthroughWanted) {
      want |= PASSTHROUGH;
    }
    long flags = kernel & want;
    passthrough = (flags & PASSTHROUGH) != 0;
    out.set(JAVA_INT, 4, Math.min(minor, PROTOCOL_MINOR));
    out.set(JAVA_INT, 8, in.get(JAVA_INT, 8)); // max_readahead: as the kernel offers; the mount raises it after
    out.set(JAVA_INT, 12, (int) flags);
    out.set(JAVA_INT, 20, 4096); // max_write: nothing is written
    out.set(JAVA_INT, 24, 1); // time_gran
    out.set(JAVA_SHORT, 28, (short) (MAX_READ / 4096)); // max_pages
    out.set(JAVA_INT, 32, (int) (flags >>> 32)); // flags2
    out.set(JAVA_INT, 36, passthrough ? 1 : 0); // max_stack_depth: the backing files are on a plain file system
    LOG.fine(() -> "event=fuse_init mountpoint=" + mountPoint + " protocol=7." + minor + " passthrough=" + passthrough);
    reply(w, unique, 0, 64);
  }

  private void lookup(Worker w, long unique, long parent, String name) {
    String dir = path(parent);
    if (dir == null) {
      reply(w, unique, ENOENT, 0);
      return;
    }
    Long ino = inodeOf(dir.isEmpty() ? name : dir + "/" + name);
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 128);
    out.fill((byte) 0);
    out.set(JAVA_LONG, 16, TIMEOUT_S); // entry_valid; with node 0: a cached "no such entry"
    if (ino != null) {
      out.set(JAVA_LONG, 0, ino);
      out.set(JAVA_LONG, 24, TIMEOUT_S); // attr_valid
      if (!fillAttr(out.asSlice(40, ATTR_SIZE), ino)) {
        reply(w, unique, ENOENT, 0);
        return;
      }
    }
    reply(w, unique, 0, 128);
  }

  private void getattr(Worker w, long unique, long ino) {
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 16 + ATTR_SIZE);
    out.fill((byte) 0);
    out.set(JAVA_LONG, 0, TIMEOUT_S);
    if (!fillAttr(out.asSlice(16, ATTR_SIZE), ino)) {
      reply(w, unique, ENOENT, 0);
      return;
    }
    reply(w, unique, 0, 16 + ATTR_SIZE);
  }

  private void readlink(Worker w, long unique, long ino) {
    String p = path(ino);
    String target = p == null ? null : fs.readlink("/" + p);
    if (target == null) {
      reply(w, unique, EINVAL, 0);
      return;
    }
    byte[] bytes = target.getBytes(StandardCharsets.UTF_8);
    MemorySegment.copy(bytes, 0, w.reply, ValueLayout.JAVA_BYTE, OUT_HEADER, bytes.length);
    reply(w, unique, 0, bytes.length);
  }

  private void open(Worker w, long unique, long ino, int flags) {
    String p = path(ino);
    if (p == null) {
      reply(w, unique, ENOENT, 0);
      return;
    }
    long h = fs.open("/" + p, (flags & 3) != 0); // O_ACCMODE
    if (h < 0) {
      reply(w, unique, (int) -h, 0);
      return;
    }
    handleInodes.put(h, ino);
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 16);
    out.set(JAVA_LONG, 0, h);
    out.set(JAVA_INT, 8, FOPEN_KEEP_CACHE); // the bytes never change
    out.set(JAVA_INT, 12, 0);
    InodeIo state = io.computeIfAbsent(ino, i -> new InodeIo());
    synchronized (state) {
      int backing = passthrough ? backingFor(state, h, p) : 0;
      if (backing > 0) {
        state.passthroughOpens++;
        passthroughOpens.incrementAndGet();
        passthroughHandles.add(h);
        out.set(JAVA_INT, 8, FOPEN_PASSTHROUGH);
        out.set(JAVA_INT, 12, backing);
      } else {
        state.cachedOpens++;
      }
      // Written while the inode's mode is held: the kernel must see the opens in the order they were decided.
      reply(w, unique, 0, 16);
    }
  }

  /**
   * The inode's backing id for a passthrough open, registered on first use; 0 when this open is served by Thaw: no
   * verified whole-file copy yet, or files of the inode still open through Thaw. A file closed just before this open
   * is released to Thaw a little after the close (a program reading a header, then mapping the rest): that is waited
   * for briefly, once while the inode stays busy.
   */
  private int backingFor(InodeIo state, long handle, String path) {
    if (state.backingId > 0) {
      return state.backingId;
    }
    if (state.cachedOpens > 0 && state.waitedInVain) {
      return 0;
    }
    ChunkCache.Lease copy;
    try {
      copy = fs.wholeFile(handle);
    } catch (IOException | RuntimeException e) {
      LOG.warning(() -> "event=whole_file_unavailable path=/" + path + " cause=" + e);
      return 0;
    }
    if (copy == null) {
      return 0;
    }
    long deadline = System.nanoTime() + RELEASE_WAIT.toNanos();
    try {
      for (long left = RELEASE_WAIT.toNanos(); state.cachedOpens > 0 && left > 0; left = deadline - System.nanoTime()) {
        state.wait(Math.max(1, left / 1_000_000));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (state.cachedOpens > 0) {
      state.waitedInVain = true;
      copy.close();
      return 0;
    }
    int id = NATIVE.backingOpen(fd, copy.file());
    if (id <= 0) {
      copy.close();
      if (id == -EPERM) { // opening backing files takes CAP_SYS_ADMIN: without it, never again
        passthrough = false;
        LOG.info(() -> "event=passthrough_off mountpoint=" + mountPoint + " cause=\"no CAP_SYS_ADMIN\"");
      } else {
        LOG.warning(() -> "event=passthrough_refused path=/" + path + " errno=" + -id);
      }
      return 0;
    }
    state.backingId = id;
    state.copy = copy;
    return id;
  }

  private void read(Worker w, long unique, long ino, long fh, long offset, int size) throws Throwable {
    w.pieces.clear();
    try {
      String p = path(ino);
      ByteBuffer dst = w.reply.asSlice(OUT_HEADER, Math.min(size, MAX_READ)).asByteBuffer();
      int n = fs.read(fh, p == null ? "?" : "/" + p, offset, dst, (file, position, length, at) -> {
        w.pieces.add(new long[] {at, length, NATIVE.openRead(file), position});
      });
      if (n < 0) {
        reply(w, unique, -n, 0);
      } else if (w.pieces.isEmpty() || !spliceReply(w, unique, n)) {
        for (long[] piece : w.pieces) { // copied after all: the splice did not go through
          NATIVE.pread(w, (int) piece[2], w.reply.asSlice(OUT_HEADER + piece[0], piece[1]), piece[3]);
        }
        reply(w, unique, 0, n);
      }
    } finally {
      for (long[] piece : w.pieces) {
        NATIVE.close((int) piece[2]);
      }
      w.pieces.clear();
    }
  }

  /**
   * Replies to a read through the thread's pipe: the header and the bytes in memory written into it, the cached chunk
   * files' regions spliced into it (page references, not copies), then the pipe spliced to the kernel. False, with
   * nothing sent, when a splice falls short (the pipe cannot grow to a whole reply, say): the caller copies instead.
   */
  private boolean spliceReply(Worker w, long unique, int n) throws Throwable {
    if (w.pipeRead < 0 && !NATIVE.openPipe(w)) {
      return false;
    }
    int total = OUT_HEADER + n;
    w.reply.set(JAVA_INT, 0, total);
    w.reply.set(JAVA_INT, 4, 0);
    w.reply.set(JAVA_LONG, 8, unique);
    boolean ok = NATIVE.writeAll(w, w.pipeWrite, w.reply, 0, OUT_HEADER);
    long pos = 0;
    for (int i = 0; ok && i < w.pieces.size(); i++) {
      long[] piece = w.pieces.get(i);
      if (piece[0] > pos) {
        ok = NATIVE.writeAll(w, w.pipeWrite, w.reply, OUT_HEADER + pos, piece[0] - pos);
      }
      ok = ok && NATIVE.spliceIn(w, (int) piece[2], piece[3], piece[1]);
      pos = piece[0] + piece[1];
    }
    if (ok && pos < n) {
      ok = NATIVE.writeAll(w, w.pipeWrite, w.reply, OUT_HEADER + pos, n - pos);
    }
    if (!ok) {
      NATIVE.closePipe(w); // whatever is in it is stale
      return false;
    }
    long sent = (long) NATIVE.splice.invokeExact(w.errno, w.pipeRead, MemorySegment.NULL, fd, MemorySegment.NULL,
        (long) total, 1 /* SPLICE_F_MOVE */);
    if (sent != total) {
      int e = w.errno();
      NATIVE.closePipe(w);
      if (sent < 0 && e == ENOENT) {
        return true; // the request was interrupted: nobody waits for the reply
      }
      LOG.fine(() -> "event=splice_reply_failed sent=" + sent + " errno=" + e + "; copying");
      return false;
    }
    return true;
  }

  private void release(Worker w, long unique, long fh) {
    Long ino = handleInodes.remove(fh);
    boolean passedThrough = passthroughHandles.remove(fh);
    InodeIo state = ino == null ? null : io.get(ino);
    if (state != null) {
      synchronized (state) {
        // The kernel has let go of the file before it sends RELEASE: counting down here never runs ahead of it.
        if (passedThrough) {
          if (--state.passthroughOpens == 0) {
            NATIVE.backingClose(fd, state.backingId);
            state.backingId = 0;
            state.copy.close();
            state.copy = null;
          }
        } else {
          if (--state.cachedOpens == 0) {
            state.waitedInVain = false;
          }
          state.notifyAll();
          if (passthrough) {
            try {
              ChunkCache.Lease copy = fs.wholeFile(fh); // a file now read whole gets its copy made
              if (copy != null) {
                copy.close();
              }
            } catch (IOException | RuntimeException e) {
              LOG.fine(() -> "event=whole_file_unavailable handle=" + fh + " cause=" + e);
            }
          }
        }
      }
    }
    fs.release(fh);
    reply(w, unique, 0, 0);
  }

  private void opendir(Worker w, long unique, long ino) {
    String p = path(ino);
    if (p == null || fs.list("/" + p) == null) {
      reply(w, unique, p == null ? ENOENT : ENOTDIR, 0);
      return;
    }
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 16);
    out.fill((byte) 0);
    out.set(JAVA_INT, 8, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR); // listings never change
    reply(w, unique, 0, 16);
  }

  private void readdir(Worker w, long unique, long ino, long offset, int size) {
    String p = path(ino);
    List<String> names = p == null ? null : fs.list("/" + p);
    if (names == null) {
      reply(w, unique, p == null ? ENOENT : ENOTDIR, 0);
      return;
    }
    MemorySegment out = w.reply.asSlice(OUT_HEADER, Math.min(size, MAX_READ));
    long used = 0;
    for (long i = offset; i < names.size() + 2L; i++) {
      String name = i == 0 ? "." : i == 1 ? ".." : names.get((int) i - 2);
      Long child = i == 0 ? Long.valueOf(ino) : i == 1 ? parentOf(p) : inodeOf(p.isEmpty() ? name : p + "/" + name);
      if (child == null) {
        continue;
      }
      byte[] b = name.getBytes(StandardCharsets.UTF_8);
      long need = (24 + b.length + 7) & ~7L; // struct fuse_dirent, padded to 8 bytes
      if (used + need > out.byteSize()) {
        break;
      }
      MemorySegment d = out.asSlice(used, need);
      d.fill((byte) 0);
      d.set(JAVA_LONG, 0, child);
      d.set(JAVA_LONG, 8, i + 1); // the offset of the next entry
      d.set(JAVA_INT, 16, b.length);
      d.set(JAVA_INT, 20, (modeOf(child) >>> 12) & 017); // DT_* is the mode's type bits
      MemorySegment.copy(b, 0, d, ValueLayout.JAVA_BYTE, 24, b.length);
      used += need;
    }
    reply(w, unique, 0, (int) used);
  }

  private void statfs(Worker w, long unique) {
    MemorySegment out = w.reply.asSlice(OUT_HEADER, 80);
    out.fill((byte) 0);
    out.set(JAVA_LONG, 0, (fs.totalBytes() + 4095) / 4096); // blocks
    out.set(JAVA_LONG, 24, fs.fileCount()); // files
    out.set(JAVA_INT, 40, 4096); // bsize
    out.set(JAVA_INT, 44, 255); // namelen
    out.set(JAVA_INT, 48, 4096); // frsize
    reply(w, unique, 0, 80);
  }

  // ------------------------------------------------------------------ helpers

  /** Sends a reply whose {@code length} argument bytes are already in the worker's reply buffer after the header. */
  private void reply(Worker w, long unique, int errno, int length) {
    int total = OUT_HEADER + (errno == 0 ? length : 0);
    w.reply.set(JAVA_INT, 0, total);
    w.reply.set(JAVA_INT, 4, -errno);
    w.reply.set(JAVA_LONG, 8, unique);
    try {
      long n = (long) NATIVE.write.invokeExact(w.errno, fd, w.reply, (long) total);
      if (n < 0 && w.errno() != ENOENT && !closed) { // ENOENT: the request was interrupted meanwhile
        int e = w.errno();
        LOG.warning(() -> "event=fuse_reply_failed mountpoint=" + mountPoint + " errno=" + e);
      }
    } catch (Throwable t) {
      LOG.log(Level.WARNING, "event=fuse_reply_failed mountpoint=" + mountPoint, t);
    }
  }

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

  /** Fills a struct fuse_attr for an inode; false when there is none. */
  private boolean fillAttr(MemorySegment attr, long ino) {
    String p = path(ino);
    ModelFileSystem.Attributes a = p == null ? null : fs.attributes("/" + p);
    if (a == null) {
      return false;
    }
    attr.fill((byte) 0);
    attr.set(JAVA_LONG, 0, ino);
    attr.set(JAVA_LONG, 8, a.size());
    attr.set(JAVA_LONG, 16, (a.size() + 511) / 512);
    for (long at : new long[] {24, 32, 40}) { // atime, mtime, ctime: the mount's
      attr.set(JAVA_LONG, at, mounted.getEpochSecond());
    }
    for (long at : new long[] {48, 52, 56}) {
      attr.set(JAVA_INT, at, mounted.getNano());
    }
    attr.set(JAVA_INT, 60, typeBits(a.kind()) | (a.mode() & 07555)); // read-only: no write bits
    attr.set(JAVA_INT, 64, a.links());
    attr.set(JAVA_INT, 68, uid);
    attr.set(JAVA_INT, 72, gid);
    attr.set(JAVA_INT, 80, 4096); // blksize
    return true;
  }

  /**
   * Ends the session: libfuse unmounts lazily (files still open keep reading until closed), and the request threads
   * end once the kernel lets go, waited for up to 5 s; then the session's memory is freed. Threads still serving open
   * files are left to end with them.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      NATIVE.sessionUnmount.invokeExact(session);
      long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
      List<Thread> all;
      synchronized (threads) {
        all = List.copyOf(threads);
      }
      boolean ended = true;
      for (Thread t : all) {
        long left = deadline - System.nanoTime();
        if (left > 0) {
          t.join(Duration.ofNanos(left));
        }
        ended &= !t.isAlive();
      }
      if (ended) {
        NATIVE.sessionDestroy.invokeExact(session); // closes the descriptor
        arena.close();
      } else {
        LOG.info(() -> "event=fuse_close_timeout mountpoint=" + mountPoint + " cause=files still open");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Throwable e) {
      LOG.log(Level.WARNING, "event=fuse_close_failed mountpoint=" + mountPoint, e);
    }
    for (InodeIo state : io.values()) {
      synchronized (state) {
        if (state.copy != null) {
          state.copy.close();
          state.copy = null;
        }
      }
    }
  }

  /** libfuse's and libc's functions, looked up once. */
  private static final class Native {
    private final Throwable unavailable;
    MethodHandle sessionNew;
    MethodHandle sessionMount;
    MethodHandle sessionFd;
    MethodHandle sessionUnmount;
    MethodHandle sessionDestroy;
    MethodHandle read;
    MethodHandle write;
    MethodHandle pread;
    MethodHandle splice;
    MethodHandle pipe2;
    MethodHandle fcntl;
    MethodHandle ioctl;
    MethodHandle open;
    MethodHandle closeFd;

    Native() {
      Throwable failure = null;
      try {
        SymbolLookup fuse = SymbolLookup.libraryLookup(LazyMount.libfusePath(), Arena.global());
        sessionNew = h(fuse, "fuse_session_new", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        sessionMount = h(fuse, "fuse_session_mount", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        sessionFd = h(fuse, "fuse_session_fd", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        sessionUnmount = h(fuse, "fuse_session_unmount", FunctionDescriptor.ofVoid(ADDRESS));
        sessionDestroy = h(fuse, "fuse_session_destroy", FunctionDescriptor.ofVoid(ADDRESS));
        Linker.Option errno = Linker.Option.captureCallState("errno");
        read = libc("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), errno);
        write = libc("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), errno);
        pread = libc("pread64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), errno);
        splice = libc("splice", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG,
            JAVA_INT), errno);
        pipe2 = libc("pipe2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        fcntl = libc("fcntl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT),
            Linker.Option.firstVariadicArg(2));
        ioctl = libc("ioctl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
            Linker.Option.firstVariadicArg(2), errno);
        open = libc("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            Linker.Option.firstVariadicArg(2));
        closeFd = libc("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
      } catch (RuntimeException | Error e) {
        failure = e;
      }
      unavailable = failure;
    }

    private static MethodHandle h(SymbolLookup lib, String name, FunctionDescriptor d) {
      return LINKER.downcallHandle(lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError(
          "libfuse 3 is needed (no " + name + " in " + LazyMount.libfusePath() + ")")), d);
    }

    private static MethodHandle libc(String name, FunctionDescriptor d, Linker.Option... options) {
      return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), d, options);
    }

    void require() throws IOException {
      String arch = System.getProperty("os.arch");
      if (!arch.equals("amd64") && !arch.equals("x86_64")) {
        throw new IOException("Thaw's FUSE session knows the kernel's struct layouts on x86_64 Linux only; this is "
            + arch);
      }
      if (unavailable != null) {
        throw new IOException("libfuse 3 is not usable (" + unavailable.getMessage()
            + "); install it: apt-get install fuse3 libfuse3-3", unavailable);
      }
    }

    /** Registers {@code file} as a backing file; returns its id, or a negative errno. */
    int backingOpen(int devFd, Path file) {
      try (Arena a = Arena.ofConfined()) {
        int fileFd = openRead(file);
        try {
          MemorySegment map = a.allocate(16);
          map.set(JAVA_INT, 0, fileFd);
          MemorySegment err = a.allocate(Linker.Option.captureStateLayout());
          int id = (int) ioctl.invokeExact(err, devFd, IOC_BACKING_OPEN, map);
          return id >= 0 ? id : -(int) ERRNO.get(err, 0L);
        } finally {
          close(fileFd); // the kernel holds its own reference
        }
      } catch (Throwable t) {
        LOG.log(Level.WARNING, "event=backing_open_failed file=" + file, t);
        return -EIO;
      }
    }

    void backingClose(int devFd, int id) {
      try (Arena a = Arena.ofConfined()) {
        MemorySegment idSeg = a.allocate(JAVA_INT);
        idSeg.set(JAVA_INT, 0, id);
        MemorySegment err = a.allocate(Linker.Option.captureStateLayout());
        int rc = (int) ioctl.invokeExact(err, devFd, IOC_BACKING_CLOSE, idSeg);
        if (rc < 0) {
          LOG.fine(() -> "event=backing_close_failed id=" + id + " errno=" + (int) ERRNO.get(err, 0L));
        }
      } catch (Throwable t) {
        LOG.log(Level.WARNING, "event=backing_close_failed id=" + id, t);
      }
    }

    /** A non-blocking pipe of 1 MiB for the worker (the most an unprivileged process may ask), or false. */
    boolean openPipe(Worker w) throws Throwable {
      MemorySegment fds = w.arena.allocate(JAVA_INT, 2);
      if ((int) pipe2.invokeExact(fds, 0x80000 | 0x800 /* O_CLOEXEC | O_NONBLOCK */) != 0) {
        return false;
      }
      w.pipeRead = fds.getAtIndex(JAVA_INT, 0);
      w.pipeWrite = fds.getAtIndex(JAVA_INT, 1);
      if ((int) fcntl.invokeExact(w.pipeWrite, 1031 /* F_SETPIPE_SZ */, 1 << 20) < OUT_HEADER + MAX_READ) {
        closePipe(w);
        return false;
      }
      return true;
    }

    void closePipe(Worker w) {
      if (w.pipeRead >= 0) {
        close(w.pipeRead);
        close(w.pipeWrite);
      }
      w.pipeRead = -1;
      w.pipeWrite = -1;
    }

    /** Writes {@code length} bytes of {@code from} at {@code at} into the pipe; false when it is full. */
    boolean writeAll(Worker w, int to, MemorySegment from, long at, long length) throws Throwable {
      while (length > 0) {
        long n = (long) write.invokeExact(w.errno, to, from.asSlice(at, length), length);
        if (n <= 0) {
          return false;
        }
        at += n;
        length -= n;
      }
      return true;
    }

    /** Splices {@code length} bytes of a file from {@code position} into the worker's pipe; false when short. */
    boolean spliceIn(Worker w, int fileFd, long position, long length) throws Throwable {
      w.offset.set(JAVA_LONG, 0, position);
      while (length > 0) {
        long n = (long) splice.invokeExact(w.errno, fileFd, w.offset, w.pipeWrite, MemorySegment.NULL, length,
            1 | 2 /* SPLICE_F_MOVE | SPLICE_F_NONBLOCK */);
        if (n <= 0) {
          return false;
        }
        length -= n;
      }
      return true;
    }

    void pread(Worker w, int fileFd, MemorySegment into, long position) throws Throwable {
      long done = 0;
      while (done < into.byteSize()) {
        long n = (long) pread.invokeExact(w.errno, fileFd, into.asSlice(done), into.byteSize() - done, position + done);
        if (n <= 0) {
          throw new IOException("a cached chunk file ended early (" + done + " of " + into.byteSize() + " bytes)");
        }
        done += n;
      }
    }

    /** Opens a cached file read-only; its descriptor outlives an eviction of the file. */
    int openRead(Path file) throws IOException {
      try (Arena a = Arena.ofConfined()) {
        int fd = (int) open.invokeExact(a.allocateFrom(file.toString()), 0x80000 /* O_RDONLY | O_CLOEXEC */, 0);
        if (fd < 0) {
          throw new IOException("cannot open the cached file " + file);
        }
        return fd;
      } catch (IOException e) {
        throw e;
      } catch (Throwable t) {
        throw new IOException("cannot open the cached file " + file + ": " + t, t);
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
