package dev.thaw.store;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.logging.Logger;

/**
 * Verified chunks on local disk, bounded in bytes and evicted by recency.
 *
 * <p>Layout: {@code chunks/<2 chars>/<key>} holds verified chunks, {@code tmp/} chunks being written,
 * {@code hashes.log} the hashes recorded for direct-mode chunks, and {@code lock} names the owning process. Whole-file
 * copies (a complete file's chunks concatenated, for FUSE passthrough) are entries too, keyed {@code whole-<sha256 of
 * the chunk list>}: counted against the limit and evicted like chunks, so a file read whole takes its size twice.
 * A chunk is written to {@code tmp/}, and renamed into {@code chunks/} only after the caller verified its hash, so
 * a crash or {@code kill -9} never leaves a chunk that would be served wrong; at open the cache drops what is in
 * {@code tmp/} and serves what {@code chunks/} holds. A chunk held by a {@link Lease} is never evicted.
 */
public final class ChunkCache implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ChunkCache.class.getName());

  private final Path dir;
  private final Path chunks;
  private final Path tmp;
  private volatile long maxBytes; // lowered when the disk fills before the cache reaches it
  private final FileChannel lockChannel;
  private final FileLock lock;
  private final FileChannel hashLog;
  private final Map<String, String> recordedHashes = new ConcurrentHashMap<>();
  private final AtomicLong tmpCounter = new AtomicLong();
  private ChunkFetcher fetcher; // guarded by this; made by the first reader
  // Access-ordered: iteration starts at the least recently used chunk.
  private final LinkedHashMap<String, CacheEntry> entries = new LinkedHashMap<>(1024, 0.75f, true);
  // Pins taken by readers waiting for a chunk that is not cached yet; it arrives pinned by them.
  private final Map<String, Integer> reservations = new java.util.HashMap<>();
  private long usedBytes;
  private long evictions;
  private long discarded;
  private final boolean directWrites;
  // Puts share it; close takes it alone, so once close returns no straggling fetch writes into the directory (whose
  // lock it has given up).
  private final ReentrantReadWriteLock writes = new ReentrantReadWriteLock();
  private boolean closed; // guarded by writes

  private static final class CacheEntry {
    final long size;
    int pins;

    CacheEntry(long size) {
      this.size = size;
    }
  }

  private ChunkCache(Path dir, long maxBytes, FileChannel lockChannel, FileLock lock) throws IOException {
    this.dir = dir;
    this.chunks = dir.resolve("chunks");
    this.tmp = dir.resolve("tmp");
    this.maxBytes = maxBytes;
    this.lockChannel = lockChannel;
    this.lock = lock;
    Files.createDirectories(chunks);
    Files.createDirectories(tmp);
    rescan();
    this.directWrites = supportsDirectWrites(tmp);
    Path log = dir.resolve("hashes.log");
    if (Files.exists(log)) {
      for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
        String[] parts = line.split(" ");
        // A torn last line from a kill is skipped: its chunk will be hashed again when next fetched.
        if (parts.length == 2 && Hashes.isHex(parts[1], 64)) {
          recordedHashes.put(parts[0], parts[1]);
        }
      }
    }
    this.hashLog = FileChannel.open(log, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
  }

  /**
   * Opens (creating if needed) the cache in {@code dir}, holding at most {@code maxBytes}.
   *
   * @throws CacheLockedException when another process owns the directory; the message names it
   */
  public static ChunkCache open(Path dir, long maxBytes) throws IOException {
    if (maxBytes <= 0) {
      throw new IllegalArgumentException("cache size must be positive, got " + maxBytes);
    }
    Files.createDirectories(dir);
    Path lockFile = dir.resolve("lock");
    FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
    FileLock lock;
    try {
      lock = ch.tryLock();
    } catch (OverlappingFileLockException e) {
      lock = null;
    }
    if (lock == null) {
      String holder = new String(Files.readAllBytes(lockFile), StandardCharsets.UTF_8).trim();
      ch.close();
      throw new CacheLockedException("cache directory " + dir + " is in use by " + (holder.isEmpty() ? "another process" : holder)
          + "; stop that process or give this one another cache directory");
    }
    String me = "pid " + ProcessHandle.current().pid() + " on " + hostName() + " since " + Instant.now()
        + " (" + ManagementFactory.getRuntimeMXBean().getName() + ")\n";
    ch.truncate(0);
    ch.write(ByteBuffer.wrap(me.getBytes(StandardCharsets.UTF_8)), 0);
    try {
      return new ChunkCache(dir.toAbsolutePath(), maxBytes, ch, lock);
    } catch (IOException | RuntimeException e) {
      lock.release();
      ch.close();
      throw e;
    }
  }

  /**
   * A default size: 80% of the space usable on the cache's file system, counting what the cache already holds there
   * (so a full cache does not shrink itself at each start). No floor: a cache sized past its disk would find the
   * disk full before its limit, and every uncached read would fail.
   *
   * @throws IOException naming the directory when its file system has no room for a cache at all
   */
  public static long defaultMaxBytes(Path dir) throws IOException {
    Path existing = dir.toAbsolutePath();
    while (existing != null && !Files.exists(existing)) {
      existing = existing.getParent();
    }
    long usable = Files.getFileStore(existing).getUsableSpace();
    long held = 0;
    Path chunkDir = dir.resolve("chunks");
    if (Files.isDirectory(chunkDir)) {
      try (var files = Files.walk(chunkDir)) {
        held = files.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
      }
    }
    long size = (long) ((usable + held) * 0.8);
    if (size < MIN_DEFAULT_BYTES) {
      throw new IOException("no room for a chunk cache in " + dir + ": its file system has " + usable
          + " bytes usable; free space there, or give the cache another directory or an explicit size");
    }
    return size;
  }

  /** Below this, a default-sized cache could not hold even a small model's chunks: say so instead. */
  static final long MIN_DEFAULT_BYTES = 1L << 20;

  private static String hostName() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (IOException e) {
      return "this host";
    }
  }

  private void rescan() throws IOException {
    try (DirectoryStream<Path> leftovers = Files.newDirectoryStream(tmp)) {
      for (Path p : leftovers) {
        Files.deleteIfExists(p);
      }
    }
    List<Object[]> found = new ArrayList<>();
    try (DirectoryStream<Path> fans = Files.newDirectoryStream(chunks)) {
      for (Path fan : fans) {
        if (!Files.isDirectory(fan)) {
          Files.deleteIfExists(fan);
          continue;
        }
        try (DirectoryStream<Path> files = Files.newDirectoryStream(fan)) {
          for (Path f : files) {
            BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class);
            found.add(new Object[] {f.getFileName().toString(), a.size(), a.lastModifiedTime().toMillis()});
          }
        }
      }
    }
    found.sort(Comparator.comparingLong(o -> (Long) o[2]));
    synchronized (entries) {
      for (Object[] o : found) {
        entries.put((String) o[0], new CacheEntry((Long) o[1]));
        usedBytes += (Long) o[1];
      }
      evictLocked(0);
    }
  }

  private Path pathOf(String key) {
    return chunks.resolve(key.substring(0, 2)).resolve(key);
  }

  public Path directory() {
    return dir;
  }

  /** The limit: as opened, or lower once the disk turned out to hold less. */
  public long maxBytes() {
    return maxBytes;
  }

  public long usedBytes() {
    synchronized (entries) {
      return usedBytes;
    }
  }

  public long evictions() {
    synchronized (entries) {
      return evictions;
    }
  }

  public int chunkCount() {
    synchronized (entries) {
      return entries.size();
    }
  }

  public boolean contains(String key) {
    synchronized (entries) {
      return entries.containsKey(key);
    }
  }

  /** The hash recorded for a direct-mode chunk when it was first fetched, or null. */
  public String recordedHash(String key) {
    return recordedHashes.get(key);
  }

  void recordHash(String key, String hash) throws IOException {
    if (recordedHashes.putIfAbsent(key, hash) == null) {
      ByteBuffer line = ByteBuffer.wrap((key + " " + hash + "\n").getBytes(StandardCharsets.UTF_8));
      synchronized (hashLog) {
        while (line.hasRemaining()) {
          hashLog.write(line);
        }
      }
    }
  }

  /** Pins a cached chunk and opens it for reading, or returns null when the cache does not hold it. */
  public Lease acquire(String key) throws IOException {
    CacheEntry e;
    synchronized (entries) {
      e = entries.get(key);
      if (e == null) {
        return null;
      }
      e.pins++;
    }
    try {
      return new Lease(key, FileChannel.open(pathOf(key), StandardOpenOption.READ), e);
    } catch (NoSuchFileException gone) {
      // Someone deleted the file behind the cache's back: forget it so it is fetched again.
      synchronized (entries) {
        if (entries.remove(key, e)) {
          usedBytes -= e.size;
        }
      }
      return null;
    } catch (IOException | RuntimeException ex) {
      unpin(e);
      throw ex;
    }
  }

  /**
   * As {@link #acquire}, for a chunk about to leave this node (to a peer): its bytes are hashed first against its hash
   * (its key for a pushed chunk, the hash recorded on its first fetch for a direct-mode one). A chunk whose bytes are
   * wrong is deleted, and one whose hash is not known is not served: both give null, as a chunk not held does.
   */
  public Lease acquireVerified(String key) throws IOException {
    String expected = Hashes.isHex(key, 2 * Hashes.LENGTH) ? key : recordedHash(key);
    if (expected == null) {
      return null;
    }
    Lease lease = acquire(key);
    if (lease == null) {
      return null;
    }
    String actual;
    try {
      actual = lease.sha256Hex(ByteBuffer.allocate(1 << 20));
    } catch (IOException | RuntimeException e) {
      lease.close();
      throw e;
    }
    if (actual.equals(expected)) {
      return lease;
    }
    LOG.warning(() -> "event=cached_chunk_corrupt chunk=" + key + " cache=" + dir + " found=\"sha256 " + actual
        + "\" action=delete_not_served");
    try (lease) {
      discard(lease);
    }
    return null;
  }

  /**
   * Deletes the chunk a lease holds because its bytes turned out wrong (bit rot, a truncated or swapped file), so the
   * next reader fetches it again. A copy stored since the lease was taken is kept. The lease stays readable until
   * closed, as an evicted chunk does.
   */
  void discard(Lease lease) throws IOException {
    synchronized (entries) {
      if (entries.remove(lease.key, lease.entry)) {
        usedBytes -= lease.entry.size;
        discarded++;
        Files.deleteIfExists(pathOf(lease.key));
      }
    }
  }

  /** Chunks deleted because their bytes were found wrong when read. */
  public long discarded() {
    synchronized (entries) {
      return discarded;
    }
  }

  /**
   * Pins {@code key} for a reader about to wait for it: if cached it cannot be evicted now, and if not it is pinned
   * the moment it arrives. The caller ({@link ChunkFetcher#readThrough}) then takes its {@link #adoptReserved lease} or
   * {@link #unreserve}s.
   */
  void reserve(String key) {
    synchronized (entries) {
      CacheEntry e = entries.get(key);
      if (e != null) {
        e.pins++;
      } else {
        reservations.merge(key, 1, Integer::sum);
      }
    }
  }

  /** Turns a reservation into a lease on the arrived chunk, or returns null (the reservation stays) if absent. */
  Lease adoptReserved(String key) throws IOException {
    CacheEntry e;
    synchronized (entries) {
      e = entries.get(key);
      if (e == null) {
        return null;
      }
    }
    try {
      return new Lease(key, FileChannel.open(pathOf(key), StandardOpenOption.READ), e);
    } catch (IOException | RuntimeException ex) {
      unpin(e);
      throw ex;
    }
  }

  /** Gives up a reservation that was not adopted. */
  void unreserve(String key) {
    synchronized (entries) {
      CacheEntry e = entries.get(key);
      if (e != null) {
        if (e.pins > 0) {
          e.pins--;
        }
      } else {
        reservations.computeIfPresent(key, (k, n) -> n > 1 ? n - 1 : null);
      }
    }
  }

  /**
   * Stores a chunk whose bytes the caller has verified: written to {@code tmp/}, then renamed into place.
   * Evicts least recently used chunks that no reader holds to stay within the limit.
   */
  void put(String key, ByteBuffer data) throws IOException {
    writes.readLock().lock();
    try {
      if (closed) {
        throw new IllegalStateException("cache " + dir + " is closed; chunk " + key + " was not stored");
      }
      putOpen(key, data);
    } finally {
      writes.readLock().unlock();
    }
  }

  private void putOpen(String key, ByteBuffer data) throws IOException {
    if (contains(key)) {
      return;
    }
    long size = data.remaining();
    Path t = tmp.resolve(key + "." + tmpCounter.incrementAndGet());
    try {
      writeMakingRoom(key, t, data, size);
      moveIntoPlace(key, t, size);
    } finally {
      Files.deleteIfExists(t);
    }
  }

  /** Renames a written file into {@code chunks/} as {@code key}, evicting to make room; readers waiting on it pin it. */
  private void moveIntoPlace(String key, Path t, long size) throws IOException {
    Path target = pathOf(key);
    Files.createDirectories(target.getParent());
    synchronized (entries) {
      evictLocked(size);
      Files.move(t, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      CacheEntry entry = new CacheEntry(size);
      if (entries.putIfAbsent(key, entry) == null) {
        usedBytes += size;
        Integer waiting = reservations.remove(key);
        entry.pins = waiting == null ? 0 : waiting;
      }
    }
  }

  /**
   * Stores under {@code key} one file holding the bytes of {@code parts} in order (cached chunks the caller pinned and
   * verified), copied within the kernel in slices, {@code pace} run before each, and returns a lease on it; a copy
   * already stored is leased as it is. A whole file's copy is an entry like a chunk: counted against the limit,
   * evicted by recency, never while leased.
   */
  Lease putConcatenation(String key, List<Lease> parts, Runnable pace) throws IOException {
    writes.readLock().lock();
    try {
      if (closed) {
        throw new IllegalStateException("cache " + dir + " is closed; " + key + " was not stored");
      }
      if (!contains(key)) {
        Path t = tmp.resolve(key + "." + tmpCounter.incrementAndGet());
        try {
          long size = 0;
          try (FileChannel out = FileChannel.open(t, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (Lease part : parts) {
              long n = part.size();
              for (long pos = 0; pos < n; ) {
                pace.run(); // between slices: whoever makes the copy may hold it back while the node is busy
                if (Thread.currentThread().isInterrupted()) {
                  throw new java.io.InterruptedIOException("interrupted while " + key + " was being made");
                }
                long moved = part.channel.transferTo(pos, Math.min(n - pos, COPY_SLICE), out);
                if (moved <= 0) {
                  throw new IOException("cached chunk " + part.key + " ended at " + pos + " of " + n + " bytes");
                }
                pos += moved;
              }
              size += n;
            }
          }
          moveIntoPlace(key, t, size);
        } finally {
          Files.deleteIfExists(t);
        }
      }
      return acquire(key);
    } finally {
      writes.readLock().unlock();
    }
  }

  /**
   * Writes a chunk file; when the file system is full before the cache reached its limit (other files took the space,
   * or the limit was set past the disk), evicts least recently used chunks until it fits and lowers the limit to what
   * the disk holds, so later chunks evict before writing. Fails, naming the cache and what to do, only when every
   * cached chunk is being read.
   */
  private void writeMakingRoom(String key, Path t, ByteBuffer data, long size) throws IOException {
    while (true) {
      try {
        writeChunkFile(t, data.duplicate());
        return;
      } catch (IOException e) {
        if (!isNoSpace(e)) {
          throw e;
        }
        Files.deleteIfExists(t);
        long freed;
        long limit;
        synchronized (entries) {
          freed = evictAtLeastLocked(size + ALIGN);
          limit = maxBytes = Math.min(maxBytes, usedBytes + size);
        }
        if (freed == 0) {
          throw new IOException("no room in the chunk cache " + dir + " for chunk " + key + " (" + size + " bytes): its"
              + " file system is full (" + usableSpace() + " bytes usable) and every cached chunk is being read; free"
              + " space there, or give the cache a larger disk (--cache DIR)", e);
        }
        long l = limit;
        LOG.warning(() -> "event=cache_disk_full cache=" + dir + " evicted_bytes=" + freed + " limit_bytes=" + l);
      }
    }
  }

  private static boolean isNoSpace(IOException e) {
    for (Throwable c = e; c != null; c = c.getCause()) {
      String m = c.getMessage();
      if (m != null && (m.contains("No space left on device") || m.contains("Disk quota exceeded"))) {
        return true;
      }
    }
    return false;
  }

  private long usableSpace() {
    try {
      return Files.getFileStore(dir).getUsableSpace();
    } catch (IOException e) {
      return -1;
    }
  }

  /** Evicts least recently used chunks that no reader holds until {@code bytes} are freed or none is left; returns bytes freed. */
  private long evictAtLeastLocked(long bytes) throws IOException {
    long freed = 0;
    Iterator<Map.Entry<String, CacheEntry>> it = entries.entrySet().iterator();
    while (freed < bytes && it.hasNext()) {
      Map.Entry<String, CacheEntry> e = it.next();
      if (e.getValue().pins > 0) {
        continue;
      }
      Files.deleteIfExists(pathOf(e.getKey()));
      usedBytes -= e.getValue().size;
      freed += e.getValue().size;
      evictions++;
      it.remove();
    }
    return freed;
  }

  private static final int ALIGN = 4096;
  private static final long COPY_SLICE = 8 << 20;
  private static final ThreadLocal<ByteBuffer> ALIGNED = new ThreadLocal<>();

  /**
   * Writes a chunk file around the page cache (O_DIRECT) where the file system allows: a chunk just fetched is read
   * by whoever waits for it right away, and copying it into the page cache as well cost more CPU than the fetch
   * itself on small machines. The length is padded to the block size for the write, then cut back.
   */
  private void writeChunkFile(Path t, ByteBuffer d) throws IOException {
    if (!directWrites) {
      try (FileChannel ch = FileChannel.open(t, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        while (d.hasRemaining()) {
          ch.write(d);
        }
      }
      return;
    }
    int len = d.remaining();
    int padded = (len + ALIGN - 1) & -ALIGN;
    ByteBuffer a = ALIGNED.get();
    if (a == null || a.capacity() < padded) {
      a = ByteBuffer.allocateDirect(Math.max(padded, 8 << 20) + ALIGN).alignedSlice(ALIGN);
      ALIGNED.set(a);
    }
    a.clear().put(d);
    a.put(a.position(), ZEROS, 0, padded - a.position()).limit(padded).position(0);
    try (FileChannel ch = FileChannel.open(t, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
        ExtendedOpenOption.DIRECT)) {
      long pos = 0;
      while (a.hasRemaining()) {
        pos += ch.write(a, pos);
      }
      ch.truncate(len);
    }
  }

  private static final byte[] ZEROS = new byte[ALIGN];

  /** Whether files in {@code dir} can be written with O_DIRECT (tmpfs, for one, refuses it): found out once, at open. */
  static boolean supportsDirectWrites(Path dir) {
    Path probe = dir.resolve("direct-io-probe." + ProcessHandle.current().pid());
    try (FileChannel ch = FileChannel.open(probe, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        ExtendedOpenOption.DIRECT)) {
      ch.write(ByteBuffer.allocateDirect(2 * ALIGN).alignedSlice(ALIGN).limit(ALIGN), 0);
      return true;
    } catch (IOException | UnsupportedOperationException e) {
      LOG.fine(() -> "cache " + dir + ": no O_DIRECT writes (" + e + "); writing through the page cache");
      return false;
    } finally {
      try {
        Files.deleteIfExists(probe);
      } catch (IOException e) {
        LOG.fine(() -> "cannot delete " + probe + ": " + e);
      }
    }
  }

  /**
   * Puts these chunks first in line for eviction (as if least recently used), so that when the cache is full they go
   * before anything else; nothing is deleted now. How a node lets go of models no longer assigned to it. Returns how
   * many of them the cache held.
   */
  public int evictFirst(java.util.Collection<String> keys) {
    synchronized (entries) {
      LinkedHashMap<String, CacheEntry> first = new LinkedHashMap<>();
      for (String k : keys) {
        CacheEntry e = entries.get(k);
        if (e != null) {
          first.put(k, e);
        }
      }
      if (first.isEmpty()) {
        return 0;
      }
      LinkedHashMap<String, CacheEntry> rest = new LinkedHashMap<>(entries);
      rest.keySet().removeAll(first.keySet());
      entries.clear(); // access order: re-inserting puts the demoted ones at the head, the rest in their old order
      entries.putAll(first);
      entries.putAll(rest);
      return first.size();
    }
  }

  private void evictLocked(long incoming) throws IOException {
    if (usedBytes + incoming <= maxBytes) {
      return;
    }
    Iterator<Map.Entry<String, CacheEntry>> it = entries.entrySet().iterator();
    while (usedBytes + incoming > maxBytes && it.hasNext()) {
      Map.Entry<String, CacheEntry> e = it.next();
      if (e.getValue().pins > 0) {
        continue;
      }
      Files.deleteIfExists(pathOf(e.getKey()));
      usedBytes -= e.getValue().size;
      evictions++;
      it.remove();
    }
    if (usedBytes + incoming > maxBytes) {
      LOG.fine(() -> "cache over its limit while every chunk is being read: used=" + usedBytes + " max=" + maxBytes);
    }
  }

  /** Unpins the entry a lease was taken on: a copy stored after that one was discarded keeps its own pins. */
  private void unpin(CacheEntry e) {
    synchronized (entries) {
      if (e.pins > 0) {
        e.pins--;
      }
    }
  }

  @Override
  public void close() throws IOException {
    ChunkFetcher f;
    synchronized (this) {
      f = fetcher;
    }
    if (f != null) {
      f.close();
    }
    writes.writeLock().lock();
    try {
      closed = true;
    } finally {
      writes.writeLock().unlock();
    }
    try {
      hashLog.close();
    } finally {
      try {
        lock.release();
      } finally {
        lockChannel.close();
      }
    }
  }

  /**
   * The node's one fetcher into this cache, shared by every reader of it (so one fetch per chunk however many readers,
   * and one bound on range requests for the node); the first reader's {@code parallelism} sizes it.
   */
  synchronized ChunkFetcher fetcher(int parallelism) {
    if (fetcher == null) {
      fetcher = new ChunkFetcher(this, parallelism);
    }
    return fetcher;
  }

  /** A pinned, open cached chunk: it is not evicted until closed. */
  public final class Lease implements AutoCloseable {
    private final String key;
    private final FileChannel channel;
    private final CacheEntry entry;
    private boolean closed;

    private Lease(String key, FileChannel channel, CacheEntry entry) {
      this.key = key;
      this.channel = channel;
      this.entry = entry;
    }

    public String key() {
      return key;
    }

    /** The chunk's file in the cache (as long as the lease is open, the cache does not evict it). */
    public Path file() {
      return pathOf(key);
    }

    public long size() throws IOException {
      return channel.size();
    }

    /** The SHA-256 (hex) of the cached bytes, read through {@code buf}. */
    String sha256Hex(ByteBuffer buf) throws IOException {
      return sha256Hex(buf, 0, Long.MAX_VALUE);
    }

    /** The SHA-256 (hex) of {@code length} cached bytes from {@code from} (fewer where the file ends first). */
    String sha256Hex(ByteBuffer buf, long from, long length) throws IOException {
      java.security.MessageDigest digest = Hashes.newDigest();
      long pos = from;
      long end = from + length < 0 ? Long.MAX_VALUE : from + length;
      while (pos < end) {
        buf.clear();
        if (end - pos < buf.capacity()) {
          buf.limit((int) (end - pos));
        }
        int n = read(buf, pos);
        if (n <= 0) {
          break;
        }
        buf.flip();
        digest.update(buf);
        pos += n;
      }
      return Hashes.hex(digest.digest());
    }

    /** Reads into {@code dst} from {@code position} until dst is full or the chunk ends; returns bytes read. */
    public int read(ByteBuffer dst, long position) throws IOException {
      int total = 0;
      while (dst.hasRemaining()) {
        int n = channel.read(dst, position + total);
        if (n < 0) {
          break;
        }
        total += n;
      }
      return total;
    }

    @Override
    public void close() {
      if (closed) {
        return;
      }
      closed = true;
      try {
        channel.close();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } finally {
        unpin(entry);
      }
    }
  }
}
