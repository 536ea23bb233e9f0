package dev.thaw.store;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Reads a model's files through the chunk cache: what the cache holds is served from disk, what it lacks is
 * fetched (blocking reads first), sequential access grows a readahead window, and the order of first touches is
 * recorded as an {@link AccessProfile}. This is the API the FUSE file system and the command line read through.
 * Thread-safe: any number of threads may read any files at once. Every reader of one cache fetches through the
 * cache's one {@link ChunkFetcher}, so a chunk several readers (mounts) want is fetched once; each reader's counters
 * count the fetches that ran for it, with its origin.
 */
public final class ModelReader implements AutoCloseable {
  private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(ModelReader.class.getName());
  private final Manifest manifest;
  private final ChunkCache cache;
  private final ChunkFetcher fetcher; // the cache's: shared with every reader of the node
  private final ChunkFetcher.Source source; // this reader's side of it
  private final ReaderOptions options;
  private final ConcurrentHashMap<String, Boolean> touched = new ConcurrentHashMap<>();
  private final List<String> touchPaths = new ArrayList<>();
  private final List<Integer> touchIndexes = new ArrayList<>();
  private final java.util.concurrent.atomic.AtomicLong blockedReads = new java.util.concurrent.atomic.AtomicLong();
  // counted on every read from many FUSE threads: adders, not one contended atomic
  private final java.util.concurrent.atomic.LongAdder bytesFromCache = new java.util.concurrent.atomic.LongAdder();
  private final java.util.concurrent.atomic.LongAdder bytesRead = new java.util.concurrent.atomic.LongAdder();
  private final CompletableFuture<Long> firstRead = new CompletableFuture<>();

  // Chunks this reader has checked (or fetched and checked itself): a cached chunk is hashed at most once per reader.
  // A future per key, so readers meeting an unchecked chunk at once wait for one check instead of each hashing it.
  private final ConcurrentHashMap<String, CompletableFuture<Boolean>> checked = new ConcurrentHashMap<>();
  private static final CompletableFuture<Boolean> GOOD = CompletableFuture.completedFuture(true);
  private final java.util.concurrent.atomic.AtomicLong cacheChecks = new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicLong corruptCached = new java.util.concurrent.atomic.AtomicLong();
  private static final ThreadLocal<ByteBuffer> CHECK_BUFFER = ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(1 << 20));

  /**
   * Takes the cached parts of a read as regions of verified chunk files rather than copies, so a caller that can send
   * bytes from a file descriptor (a FUSE reply by splice) skips copying them through memory. See
   * {@link ModelFile#read(long, ByteBuffer, ChunkFileSink)}.
   */
  @FunctionalInterface
  public interface ChunkFileSink {
    /**
     * The {@code length} bytes that belong at {@code at} in the read's buffer are those of {@code file} from
     * {@code position}: a cached chunk that has been verified, pinned only during this call (open it now; an open file
     * keeps its bytes even if the cache later evicts it).
     */
    void chunkFile(Path file, long position, int length, int at) throws IOException;
  }

  private ModelReader(Manifest manifest, Origin origin, ChunkCache cache, ReaderOptions options) {
    this.manifest = manifest;
    this.cache = cache;
    this.options = options;
    this.fetcher = cache.fetcher(options.parallelism());
    this.source = new ChunkFetcher.Source(origin, key -> checked.put(key, GOOD));
  }

  /** A reader of {@code manifest} whose bytes come from {@code origin} through {@code cache}. */
  public static ModelReader open(Manifest manifest, Origin origin, ChunkCache cache, ReaderOptions options) {
    return new ModelReader(manifest, origin, cache, options);
  }

  public Manifest manifest() {
    return manifest;
  }

  /**
   * Bytes fetched from the origin for this reader so far (refetches of corrupt chunks included; a chunk another reader
   * of the cache was already fetching counts there).
   */
  public long bytesFetched() {
    return source.bytesFetched.get();
  }

  public long chunksFetched() {
    return source.chunksFetched.get();
  }

  public long corruptRefetches() {
    return source.corruptRefetches.get();
  }

  /** Cached chunks found wrong (size or hash) when this reader first used them: deleted and fetched again. */
  public long corruptCachedChunks() {
    return corruptCached.get();
  }

  /** Cached chunks this reader hashed to check them (each at most once). */
  long cacheChecks() {
    return cacheChecks.get();
  }

  /** Reads that found their chunk missing from the cache and had to wait for the origin. */
  public long blockedReads() {
    return blockedReads.get();
  }

  /** Bytes readers got, all told. */
  public long bytesRead() {
    return bytesRead.sum();
  }

  /** Bytes readers got from chunks already in the local cache (as opposed to ones they waited for). */
  public long bytesFromCache() {
    return bytesFromCache.sum();
  }

  /**
   * Tells {@code listener} of every chunk this reader fetches from the origin (after it is verified and cached), with
   * the nanoseconds the fetch took; it runs on a fetch thread, so it must be quick.
   */
  public void onChunkFetched(java.util.function.ObjLongConsumer<ChunkRef> listener) {
    source.onFetched = java.util.Objects.requireNonNull(listener);
  }

  /** Asks {@code peers} before the origin for every chunk whose hash is known; null: the origin only. */
  public void usePeers(ChunkPeers peers) {
    source.peers = peers;
  }

  /** Bytes peers supplied (verified), which the origin did not have to send. */
  public long bytesFromPeers() {
    return source.bytesFromPeers.get();
  }

  /** Completes, with {@link System#nanoTime()} then, when the first read arrives. */
  public CompletableFuture<Long> firstRead() {
    return firstRead.copy();
  }

  /**
   * Completes, with {@link System#nanoTime()} then, at the next read of a file under {@code directory}: the first byte
   * of one model of a repository, once its load has begun.
   */
  public CompletableFuture<Long> firstReadUnder(String directory) {
    String prefix = directory.endsWith("/") ? directory : directory + "/";
    CompletableFuture<Long> first = new CompletableFuture<>();
    firstReadWatches.add(new FirstReadWatch(prefix, first));
    first.whenComplete((at, e) -> firstReadWatches.removeIf(w -> w.first() == first));
    return first;
  }

  private record FirstReadWatch(String prefix, CompletableFuture<Long> first) {}

  private final java.util.concurrent.CopyOnWriteArrayList<FirstReadWatch> firstReadWatches =
      new java.util.concurrent.CopyOnWriteArrayList<>();

  /**
   * Puts the cached chunks of the files under {@code directory} first in line for eviction, except those a file
   * elsewhere in the model shares: what a node does when a server lets go of one model of a repository. Nothing is
   * deleted now. Returns how many chunks the cache held.
   */
  public int evictFirstUnder(String directory) {
    String prefix = directory.endsWith("/") ? directory : directory + "/";
    java.util.Set<String> under = new java.util.LinkedHashSet<>();
    java.util.Set<String> elsewhere = new java.util.HashSet<>();
    for (FileEntry f : manifest.files()) {
      for (ChunkRef c : f.chunks()) {
        (f.path().startsWith(prefix) ? under : elsewhere).add(c.key());
      }
    }
    under.removeAll(elsewhere);
    return cache.evictFirst(under);
  }

  /** Opens a regular file of the manifest for reading. */
  public ModelFile open(String path) throws FileNotFoundException {
    Entry e = manifest.entry(path);
    if (!(e instanceof FileEntry f)) {
      throw new FileNotFoundException(e == null ? "no such file in " + manifest.digest() + ": " + path : "not a regular file: " + path);
    }
    return new ModelFile(f);
  }

  /**
   * Reads from {@code offset} of {@code file} into {@code dst} until dst is full or the file ends.
   *
   * @return bytes read, or -1 when {@code offset} is at or past the end
   */
  public int read(FileEntry file, long offset, ByteBuffer dst) throws IOException {
    return read(file, offset, dst, null, null);
  }

  /**
   * As {@link #read(FileEntry, long, ByteBuffer)}, keeping the last chunk open in {@code slot} for the next read; with a
   * {@code sink}, cached bytes go to it as file regions and their room in {@code dst} is skipped, not written.
   */
  private int read(FileEntry file, long offset, ByteBuffer dst, AtomicReference<ChunkCache.Lease> slot,
      ChunkFileSink sink) throws IOException {
    if (offset < 0) {
      throw new IllegalArgumentException("negative offset " + offset);
    }
    lastRead = System.nanoTime();
    if (!firstRead.isDone()) {
      firstRead.complete(lastRead);
    }
    if (!firstReadWatches.isEmpty()) {
      for (FirstReadWatch w : firstReadWatches) {
        if (file.path().startsWith(w.prefix())) {
          w.first().complete(lastRead);
        }
      }
    }
    if (offset >= file.size()) {
      return dst.hasRemaining() ? -1 : 0;
    }
    List<ChunkRef> chunks = file.chunks();
    int index = file.chunkIndexAt(offset);
    int total = 0;
    long pos = offset;
    while (dst.hasRemaining() && pos < file.size()) {
      ChunkRef chunk = chunks.get(index);
      record(file, chunk);
      int n = readChunk(chunk, pos - chunk.fileOffset(), dst, slot, sink);
      total += n;
      pos += n;
      index++;
    }
    bytesRead.add(total);
    return total;
  }

  private int readChunk(ChunkRef chunk, long offsetInChunk, ByteBuffer dst, AtomicReference<ChunkCache.Lease> slot,
      ChunkFileSink sink) throws IOException {
    int limit = dst.limit();
    int want = (int) Math.min(dst.remaining(), chunk.length() - offsetInChunk);
    dst.limit(dst.position() + want);
    try {
      // Sequential reads of one open file mostly stay in one chunk: reuse its open, pinned lease.
      ChunkCache.Lease held = slot == null ? null : slot.getAndSet(null);
      if (held != null && !held.key().equals(chunk.key())) {
        held.close();
        held = null;
      }
      if (held == null) {
        held = cache.acquire(chunk.key());
        if (held != null && !check(chunk, held)) {
          held.close(); // wrong bytes: deleted from the cache, fetched again below
          held = null;
        }
      }
      if (held != null) {
        try {
          int n = readLease(held, chunk, offsetInChunk, dst, want, sink);
          bytesFromCache.add(n);
          return n;
        } finally {
          keep(slot, held);
        }
      }
      blockedReads.incrementAndGet();
      long deadline = options.readTimeout() == null ? Long.MAX_VALUE : System.nanoTime() + options.readTimeout().toNanos();
      // Served from the fetch as soon as the blocks holding the bytes have arrived and matched, when the manifest
      // hashes blocks; else, or when the fetch ended first, from the cache once the whole chunk is in.
      int early = fetcher.readArriving(chunk, offsetInChunk, dst, deadline, source);
      if (early >= 0) {
        return early;
      }
      for (int attempt = 1; ; attempt++) {
        ChunkCache.Lease lease = fetcher.readThrough(chunk, source, deadline, options.readTimeout());
        if (lease == null) {
          // gone from the cache again at once (the disk, or another process): fetch it again
        } else if (check(chunk, lease)) {
          try {
            return readLease(lease, chunk, offsetInChunk, dst, want, sink);
          } finally {
            keep(slot, lease);
          }
        } else {
          lease.close();
        }
        if (attempt >= 3) {
          throw new IOException(chunk + " vanished from the cache directory " + cache.directory()
              + " or turned out wrong there, " + attempt + " times in a row; check that disk");
        }
      }
    } finally {
      dst.limit(limit);
    }
  }

  /**
   * Whether a cached chunk holds the bytes the manifest names: its size and hash are checked the first time this reader
   * uses it (the cache's disk may have rotted, or its files been truncated or swapped since they were verified on
   * arrival). A wrong one is deleted from the cache, so the caller fetches it again.
   */
  private boolean check(ChunkRef chunk, ChunkCache.Lease lease) throws IOException {
    CompletableFuture<Boolean> mine = new CompletableFuture<>();
    CompletableFuture<Boolean> first = checked.putIfAbsent(chunk.key(), mine);
    if (first != null) {
      try {
        return first.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while " + chunk + " was checked");
      } catch (ExecutionException e) {
        return false;
      }
    }
    String expected = chunk.hash() != null ? chunk.hash() : cache.recordedHash(chunk.key());
    String found;
    try {
      cacheChecks.incrementAndGet();
      long size = lease.size();
      found = size != chunk.length() ? size + " bytes instead of " + chunk.length()
          : expected == null ? "no recorded hash" : sha256Hex(lease, expected);
    } catch (IOException | RuntimeException e) {
      found = "a read error (" + e.getMessage() + ")"; // never left unanswered: others may wait on this check
    }
    boolean good = found == null;
    if (good) {
      mine.complete(true);
      return true;
    }
    try {
      corruptCached.incrementAndGet();
      String why = found;
      LOG.warning(() -> "event=cached_chunk_corrupt chunk=" + chunk.key() + " cache=" + cache.directory()
          + " found=\"" + why + "\" action=delete_and_refetch");
      cache.discard(lease);
    } finally {
      checked.remove(chunk.key(), mine); // the refetched copy is checked by its fetch
      mine.complete(false); // only now: whoever waited must not find the wrong copy still cached
    }
    return false;
  }

  /** Null when the lease's bytes hash to {@code expected}, else what they hash to. */
  private static String sha256Hex(ChunkCache.Lease lease, String expected) throws IOException {
    String actual = lease.sha256Hex(CHECK_BUFFER.get());
    return actual.equals(expected) ? null : "sha256 " + actual + " instead of " + expected;
  }

  /** Puts a lease back in the file's slot for the next read, or closes it. */
  private static void keep(AtomicReference<ChunkCache.Lease> slot, ChunkCache.Lease lease) {
    if (slot == null || !slot.compareAndSet(null, lease)) {
      lease.close();
    }
  }

  private static int readLease(ChunkCache.Lease lease, ChunkRef chunk, long offsetInChunk, ByteBuffer dst, int want,
      ChunkFileSink sink) throws IOException {
    if (sink != null) {
      if (lease.size() < offsetInChunk + want) {
        throw new IOException("cached " + chunk + " is shorter than its manifest says");
      }
      sink.chunkFile(lease.file(), offsetInChunk, want, dst.position());
      dst.position(dst.position() + want);
      return want;
    }
    int n = lease.read(dst, offsetInChunk);
    if (n != want) {
      throw new IOException("cached " + chunk + " is shorter than its manifest says");
    }
    return n;
  }

  private void record(FileEntry file, ChunkRef chunk) {
    if (options.recordProfile() && touched.putIfAbsent(chunk.key(), Boolean.TRUE) == null) {
      synchronized (touchPaths) {
        touchPaths.add(file.path());
        touchIndexes.add(chunk.index());
      }
    }
  }

  /** Queues chunks {@code from .. to} (exclusive) of a file for readahead. */
  void readahead(FileEntry file, int from, int to) {
    List<ChunkRef> chunks = file.chunks();
    for (int i = from; i < Math.min(to, chunks.size()); i++) {
      fetcher.fetch(chunks.get(i), FetchPriority.READAHEAD, source);
    }
  }

  /**
   * Replays a profile: queues its chunks in order at {@link FetchPriority#PROFILE}, stopping before the cache
   * would have to evict what was prefetched. Blocked reads still go first.
   *
   * @return completes when every queued chunk is cached, exceptionally if one cannot be fetched
   */
  public CompletableFuture<Void> prefetch(AccessProfile profile) {
    List<CompletableFuture<Void>> all = new ArrayList<>();
    long budget = (long) (cache.maxBytes() * 0.9);
    long queued = 0;
    outer:
    for (AccessProfile.Run run : profile.runs()) {
      if (!(manifest.entry(run.path()) instanceof FileEntry f)) {
        continue;
      }
      List<ChunkRef> chunks = f.chunks();
      for (int i = run.start(); i < run.start() + run.count() && i < chunks.size(); i++) {
        queued += chunks.get(i).length();
        if (queued > budget) {
          break outer;
        }
        all.add(fetcher.fetch(chunks.get(i), FetchPriority.PROFILE, source));
      }
    }
    return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new));
  }

  /** Queues every chunk of the model at {@link FetchPriority#BACKGROUND}, as far as the cache can hold. */
  public CompletableFuture<Void> fillAll() {
    List<AccessProfile.Run> runs = new ArrayList<>();
    for (FileEntry f : manifest.files()) {
      if (f.chunkCount() > 0) {
        runs.add(new AccessProfile.Run(f.path(), 0, f.chunkCount()));
      }
    }
    List<CompletableFuture<Void>> all = new ArrayList<>();
    long budget = (long) (cache.maxBytes() * 0.9);
    long queued = 0;
    for (AccessProfile.Run run : runs) {
      for (ChunkRef c : ((FileEntry) manifest.entry(run.path())).chunks()) {
        queued += c.length();
        if (queued > budget) {
          return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new));
        }
        all.add(fetcher.fetch(c, FetchPriority.BACKGROUND, source));
      }
    }
    return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new));
  }

  /** The chunk of this model with {@code key}, if it has one. */
  public java.util.Optional<ChunkRef> chunk(String key) {
    java.util.Map<String, ChunkRef> byKey = chunksByKey;
    if (byKey == null) {
      byKey = new java.util.HashMap<>();
      for (FileEntry f : manifest.files()) {
        for (ChunkRef c : f.chunks()) {
          byKey.putIfAbsent(c.key(), c);
        }
      }
      chunksByKey = byKey;
    }
    return java.util.Optional.ofNullable(byKey.get(key));
  }

  private volatile java.util.Map<String, ChunkRef> chunksByKey;

  /**
   * Makes sure the chunk is in the cache, fetching it as a blocked read would (one fetch however many ask): what a
   * node does for the peers whose chunks it owns in a cooperative fetch. Completes when it is cached.
   */
  public CompletableFuture<Void> fetchNow(ChunkRef chunk) {
    if (cache.contains(chunk.key())) {
      return CompletableFuture.completedFuture(null);
    }
    return fetcher.fetch(chunk, FetchPriority.BLOCKING, source);
  }

  /** The first-touch order recorded so far. */
  public AccessProfile recordedProfile() {
    synchronized (touchPaths) {
      return AccessProfile.of(manifest.digest(), List.copyOf(touchPaths), List.copyOf(touchIndexes));
    }
  }

  @Override
  public void close() {
    wholeFiles.shutdownNow();
    fetcher.release(source);
  }

  // Whole-file copies (see ModelFile#wholeFile): made or checked one at a time, off the FUSE threads.
  private final java.util.concurrent.ExecutorService wholeFiles = java.util.concurrent.Executors.newSingleThreadExecutor(
      Thread.ofPlatform().daemon().name("thaw-whole-file").factory());
  private final ConcurrentHashMap<String, CompletableFuture<Void>> wholeFileWork = new ConcurrentHashMap<>();

  /** Whether a verified whole-file copy of {@code path} is in the cache for this reader ({@link ModelFile#wholeFile}). */
  public boolean hasWholeFile(String path) {
    if (!(manifest.entry(path) instanceof FileEntry f) || f.chunkCount() == 0) {
      return false;
    }
    String key = wholeFileKey(f);
    CompletableFuture<Boolean> good = checked.get(key);
    return good != null && good.isDone() && good.getNow(false) && cache.contains(key);
  }

  /**
   * Holds whole-file work back while this reader is being read (a server loading its model): copies and checks are
   * for later opens, and must not take the disk and the cores from the reads of this one.
   */
  private void awaitQuiet() {
    try {
      long since;
      while ((since = System.nanoTime() - lastRead) < QUIET_NANOS) {
        Thread.sleep(Math.max(1, (QUIET_NANOS - since) / 1_000_000));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static final long QUIET_NANOS = 200_000_000L;
  private volatile long lastRead = System.nanoTime() - QUIET_NANOS;

  /** The cache key of a whole-file copy: named by its chunks, so equal files share one. */
  static String wholeFileKey(FileEntry f) {
    java.security.MessageDigest d = Hashes.newDigest();
    for (ChunkRef c : f.chunks()) {
      d.update((c.key() + " " + c.length() + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    return "whole-" + Hashes.hex(d.digest());
  }

  private ChunkCache.Lease wholeFile(FileEntry f) throws IOException {
    if (f.chunkCount() == 0) {
      return null;
    }
    String key = wholeFileKey(f);
    CompletableFuture<Boolean> good = checked.get(key);
    if (good != null && good.isDone() && good.getNow(false)) {
      ChunkCache.Lease lease = cache.acquire(key);
      if (lease != null) {
        return lease;
      }
      checked.remove(key, good); // evicted since: made again below
    }
    CompletableFuture<Void> mine = new CompletableFuture<>();
    if (wholeFileWork.putIfAbsent(key, mine) == null) {
      try {
        wholeFiles.execute(() -> {
          try {
            prepareWholeFile(f, key);
          } catch (IOException | RuntimeException e) {
            LOG.warning(() -> "event=whole_file_failed path=" + f.path() + " cache=" + cache.directory() + " cause=" + e);
          } finally {
            wholeFileWork.remove(key, mine);
            mine.complete(null);
          }
        });
      } catch (java.util.concurrent.RejectedExecutionException closed) {
        wholeFileWork.remove(key, mine);
      }
    }
    return null;
  }

  /**
   * Checks a whole-file copy found in the cache against the manifest's chunk hashes (it may have rotted, or been cut
   * short by a crash), or makes one from the file's cached chunks once every one is there and checked. Either way it
   * is then trusted by this reader, as its chunks are. Does nothing while chunks are missing.
   */
  private void prepareWholeFile(FileEntry f, String key) throws IOException {
    ChunkCache.Lease existing = cache.acquire(key);
    if (existing != null) {
      try (existing) {
        String wrong = existing.size() != f.size() ? existing.size() + " bytes instead of " + f.size() : null;
        for (ChunkRef c : f.chunks()) {
          if (wrong != null) {
            break;
          }
          String expected = c.hash() != null ? c.hash() : cache.recordedHash(c.key());
          awaitQuiet();
          String actual = existing.sha256Hex(CHECK_BUFFER.get(), c.fileOffset(), c.length());
          if (!actual.equals(expected)) {
            wrong = "sha256 " + actual + " for " + c + " instead of " + expected;
          }
        }
        if (wrong == null) {
          checked.put(key, GOOD);
          return;
        }
        String why = wrong;
        corruptCached.incrementAndGet();
        LOG.warning(() -> "event=cached_whole_file_corrupt path=" + f.path() + " cache=" + cache.directory()
            + " found=\"" + why + "\" action=delete_and_make_again");
        cache.discard(existing);
      }
    }
    // Chunks still arriving are waited for (a read served from a fetch is answered before the chunk is written to
    // the cache), but only when nothing else is missing: a file not read whole gets no copy.
    List<CompletableFuture<Void>> arriving = new ArrayList<>();
    for (ChunkRef c : f.chunks()) {
      if (!cache.contains(c.key())) {
        CompletableFuture<Void> fetch = fetcher.started(c.key());
        if (fetch == null) {
          return;
        }
        arriving.add(fetch);
      }
    }
    try {
      CompletableFuture.allOf(arriving.toArray(CompletableFuture[]::new)).get(1, java.util.concurrent.TimeUnit.MINUTES);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return;
    } catch (ExecutionException | java.util.concurrent.TimeoutException e) {
      return;
    }
    List<ChunkCache.Lease> parts = new ArrayList<>();
    try {
      for (ChunkRef c : f.chunks()) {
        ChunkCache.Lease part = cache.acquire(c.key());
        if (part == null || !check(c, part)) {
          if (part != null) {
            part.close();
          }
          return; // not all here (or one was wrong and is being fetched again): a later open tries again
        }
        parts.add(part);
      }
      try (ChunkCache.Lease made = cache.putConcatenation(key, parts, this::awaitQuiet)) {
        if (made != null && made.size() == f.size()) {
          checked.put(key, GOOD);
          LOG.fine(() -> "event=whole_file_made path=" + f.path() + " bytes=" + f.size());
        }
      }
    } finally {
      for (ChunkCache.Lease p : parts) {
        p.close();
      }
    }
  }

  /**
   * An open file with its own readahead state: while reads stay sequential the window of chunks fetched ahead
   * doubles, up to {@link ReaderOptions#maxReadaheadChunks()}; a jump resets it.
   */
  public final class ModelFile implements AutoCloseable {
    private final FileEntry entry;
    private long expectedNext = 0;
    private int window = 1;
    private int issuedUpTo = 0;
    private final AtomicReference<ChunkCache.Lease> slot = new AtomicReference<>();

    private ModelFile(FileEntry entry) {
      this.entry = entry;
    }

    public FileEntry entry() {
      return entry;
    }

    public long size() {
      return entry.size();
    }

    /** Reads from {@code offset}; returns bytes read or -1 at the end of the file. */
    public int read(long offset, ByteBuffer dst) throws IOException {
      return read(offset, dst, null);
    }

    /**
     * As {@link #read(long, ByteBuffer)}, but the bytes of chunks already cached go to {@code sink} as regions of their
     * verified chunk files, in place of copies: {@code dst}'s room for them is skipped, not written. Bytes still
     * arriving from the origin are copied into {@code dst} as usual; a null {@code sink} copies everything. Returns the
     * bytes read (copied or handed to the sink), or -1 at the end of the file.
     */
    public int read(long offset, ByteBuffer dst, ChunkFileSink sink) throws IOException {
      if (options.maxReadaheadChunks() > 0 && offset < entry.size() && dst.hasRemaining()) {
        planReadahead(offset, dst.remaining());
      }
      return ModelReader.this.read(entry, offset, dst, slot, sink);
    }

    private void planReadahead(long offset, int length) {
      int from;
      int to;
      synchronized (this) {
        int index = entry.chunkIndexAt(offset);
        if (offset == expectedNext) {
          window = Math.min(window * 2, options.maxReadaheadChunks());
        } else {
          window = 1;
          issuedUpTo = index + 1;
        }
        expectedNext = offset + length;
        from = Math.max(issuedUpTo, index + 1);
        to = index + 1 + window;
        if (to > issuedUpTo) {
          issuedUpTo = to;
        }
      }
      if (from < to) {
        readahead(entry, from, to);
      }
    }

    /**
     * A copy of this whole file in the cache, verified for this reader and pinned until the lease is closed, for a
     * kernel to read without this process (FUSE passthrough); or null when there is none yet. Once every chunk of the
     * file is cached, a copy is made (or one found in the cache is checked) in the background for a later call: never
     * waited for, so an open is never slowed by it.
     */
    public ChunkCache.Lease wholeFile() throws IOException {
      return ModelReader.this.wholeFile(entry);
    }

    /** Releases the chunk this file keeps open between reads. */
    @Override
    public void close() {
      ChunkCache.Lease held = slot.getAndSet(null);
      if (held != null) {
        held.close();
      }
    }
  }
}
