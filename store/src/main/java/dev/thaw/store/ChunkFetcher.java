package dev.thaw.store;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.PriorityBlockingQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Fetches chunks into a node's cache: one fetcher per {@link ChunkCache} ({@link ChunkCache#fetcher}), so there is one
 * fetch per chunk however many readers, mounts, plan prefetches and peer-owner fetches wait for it (single flight),
 * at most {@code parallelism} range requests at once on the node, most urgent first ({@link FetchPriority}). Each
 * reader asks through its {@link Source}: the origin and peers its chunks come from, and its counters; a chunk's fetch
 * uses the source of the first reader that asked for it. Each chunk is hashed as it arrives; a corrupt chunk is
 * fetched again, and a chunk corrupt twice fails with an error naming the chunk and the origin.
 *
 * <p>A few of the workers ({@link #reservedForBlocking}) take only fetches a read is blocked on: a profile prefetch
 * or readahead that fills every other worker never makes a blocked read wait for one of them to finish a chunk.
 * Fetches no read waits for start slowly, as TCP does: two at first, one more each time one completes, up to every
 * other worker. The first chunks of a profile, which the server's first reads want, then share the link with one
 * other fetch instead of fifteen.
 *
 * <p>A chunk with {@link BlockHashes} is checked block by block as its bytes arrive, and a read blocked on it is
 * served from the fetch buffer as soon as the blocks it wants have matched ({@link #readArriving}), not when the whole
 * chunk is in and cached.
 */
final class ChunkFetcher implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ChunkFetcher.class.getName());

  private final ChunkCache cache;
  private final ConcurrentHashMap<String, Task> inflight = new ConcurrentHashMap<>();
  private final PriorityBlockingQueue<Queued> queue = new PriorityBlockingQueue<>();
  // Blocking fetches again, for the reserved workers; whichever worker takes a task first runs it.
  private final java.util.concurrent.LinkedBlockingQueue<Queued> blocking = new java.util.concurrent.LinkedBlockingQueue<>();
  private final AtomicLong sequence = new AtomicLong();
  private final Thread[] workers;
  private volatile boolean closed;
  private final Object slots = new Object();
  private final int backgroundMax;
  private int backgroundLimit; // guarded by slots
  private int backgroundRunning; // guarded by slots

  /**
   * One reader's side of the fetcher: where its chunks come from, what it is told, and what its fetches came to.
   * Closed with the reader ({@link #release}).
   */
  static final class Source {
    final Origin origin;
    /** Told the key of every chunk fetched for this source and verified, just before it is stored. */
    final java.util.function.Consumer<String> stored;
    volatile ChunkPeers peers;
    volatile java.util.function.ObjLongConsumer<ChunkRef> onFetched = (c, nanos) -> {};
    final AtomicLong bytesFetched = new AtomicLong();
    final AtomicLong chunksFetched = new AtomicLong();
    final AtomicLong bytesFromPeers = new AtomicLong();
    final AtomicLong peerMisses = new AtomicLong();
    final AtomicLong corruptRefetches = new AtomicLong();
    private int running; // fetches under way for this source; guarded by this
    private volatile boolean closed;

    Source(Origin origin, java.util.function.Consumer<String> stored) {
      this.origin = origin;
      this.stored = stored;
    }

    private synchronized void started() {
      running++;
    }

    private synchronized void finished() {
      running--;
      notifyAll();
    }
  }

  private static final class Task {
    final ChunkRef chunk;
    final CompletableFuture<Void> done = new CompletableFuture<>();
    final AtomicBoolean started = new AtomicBoolean();
    volatile FetchPriority priority;
    // The readers waiting for it; the fetch uses the first one's origin and peers (another's, once it is closed).
    final java.util.Set<Source> wanting = ConcurrentHashMap.newKeySet();
    volatile Source source;
    // While the chunk arrives: the worker's buffer and how many of its first bytes matched their block hashes.
    // Readers copy from it under this task's lock; the worker takes it back (ended) under the lock before reusing it.
    private ByteBuffer arriving; // guarded by this
    private int verified; // guarded by this
    private boolean ended; // guarded by this

    Task(ChunkRef chunk, FetchPriority priority, Source source) {
      this.chunk = chunk;
      this.priority = priority;
      this.source = source;
      wanting.add(source);
    }

    synchronized void arriving(ByteBuffer buffer) {
      arriving = buffer;
      verified = 0;
    }

    synchronized void verified(int bytes) {
      verified = bytes;
      notifyAll();
    }

    synchronized void end() {
      arriving = null;
      ended = true;
      notifyAll();
    }
  }

  private record Queued(Task task, FetchPriority priority, long seq) implements Comparable<Queued> {
    @Override
    public int compareTo(Queued o) {
      int c = priority.compareTo(o.priority);
      return c != 0 ? c : Long.compare(seq, o.seq);
    }
  }

  /** The fetcher of {@code cache}, with {@code parallelism} workers: made by {@link ChunkCache#fetcher}. */
  ChunkFetcher(ChunkCache cache, int parallelism) {
    if (parallelism < 1) {
      throw new IllegalArgumentException("parallelism must be at least 1");
    }
    this.cache = cache;
    Hashes.warmUp();
    this.workers = new Thread[parallelism];
    int reserved = reservedForBlocking(parallelism);
    this.backgroundMax = parallelism - reserved;
    this.backgroundLimit = Math.min(SLOW_START, backgroundMax);
    for (int i = 0; i < parallelism; i++) {
      java.util.concurrent.BlockingQueue<Queued> from = i < reserved ? blocking : queue;
      workers[i] = Thread.ofPlatform().daemon().name((i < reserved ? "thaw-fetch-blocked-" : "thaw-fetch-") + i)
          .start(() -> work(from));
    }
  }

  /**
   * The fetch of {@code key} that has started (done once its chunk is cached or it failed), or null when there is
   * none, or it is only queued.
   */
  CompletableFuture<Void> started(String key) {
    Task t = inflight.get(key);
    return t == null || !t.started.get() ? null : t.done;
  }

  /** Workers of {@code parallelism} that take blocked reads' fetches only: one in eight, none below four. */
  static int reservedForBlocking(int parallelism) {
    return parallelism < 4 ? 0 : Math.max(1, parallelism / 8);
  }

  /** Completes when the chunk is in the cache; a queued fetch is raised to {@code priority} if that is more urgent. */
  CompletableFuture<Void> fetch(ChunkRef chunk, FetchPriority priority, Source source) {
    if (closed || source.closed) {
      return CompletableFuture.failedFuture(new IllegalStateException(closed ? "fetcher closed" : "reader closed"));
    }
    Task task = start(chunk, priority, source);
    return task == null ? CompletableFuture.completedFuture(null) : task.done;
  }

  /**
   * Copies {@code dst.remaining()} bytes of {@code chunk} from {@code offsetInChunk} into {@code dst} as soon as the
   * blocks holding them have arrived and matched their hashes, fetching the chunk as a blocked read would.
   *
   * @return the bytes copied, or -1 when they cannot be had so: the chunk has no block hashes or is cached already,
   *     its fetch ended (cached, or failed: {@link #fetch} tells which) or {@code deadlineNanos} passed first
   */
  int readArriving(ChunkRef chunk, long offsetInChunk, ByteBuffer dst, long deadlineNanos, Source source)
      throws InterruptedIOException {
    if (chunk.blocks() == null || closed || source.closed) {
      return -1;
    }
    Task task = start(chunk, FetchPriority.BLOCKING, source);
    if (task == null || !chunk.blocks().sameAs(task.chunk.blocks())) {
      return -1; // another model's manifest names the chunk with other block hashes: wait for it whole, then check it
    }
    long end = offsetInChunk + dst.remaining();
    synchronized (task) {
      while (!task.ended && (task.arriving == null || task.verified < end)) {
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
          return -1;
        }
        try {
          java.util.concurrent.TimeUnit.NANOSECONDS.timedWait(task, left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted while waiting for " + chunk);
        }
      }
      if (task.ended) {
        return -1;
      }
      int n = (int) (end - offsetInChunk);
      dst.put(task.arriving.duplicate().limit((int) end).position((int) offsetInChunk));
      return n;
    }
  }

  /**
   * The chunk from the cache, fetched first when it is missing (as a blocked read: one fetch however many ask), as a
   * pinned lease the caller closes. The chunk is reserved before the wait, so it arrives pinned and no other reader's
   * fetch can evict it first.
   *
   * @param timeout the read timeout {@code deadlineNanos} came from, for the message when it passes; null: none
   * @return the lease, or null when the chunk vanished from the cache directory again as it arrived
   * @throws IOException the fetch's own failure ({@link OriginException}, {@link ChunkCorruptException}), or a
   *     timeout naming the chunk and its URL
   */
  ChunkCache.Lease readThrough(ChunkRef chunk, Source source, long deadlineNanos, java.time.Duration timeout)
      throws IOException {
    cache.reserve(chunk.key());
    try {
      await(fetch(chunk, FetchPriority.BLOCKING, source), chunk, source, deadlineNanos, timeout);
      ChunkCache.Lease lease = cache.adoptReserved(chunk.key());
      if (lease == null) {
        cache.unreserve(chunk.key());
      }
      return lease;
    } catch (IOException | RuntimeException e) {
      cache.unreserve(chunk.key());
      throw e;
    }
  }

  private static void await(CompletableFuture<Void> f, ChunkRef chunk, Source source, long deadlineNanos,
      java.time.Duration timeout) throws IOException {
    try {
      if (deadlineNanos == Long.MAX_VALUE) {
        f.get();
      } else {
        f.get(deadlineNanos - System.nanoTime(), java.util.concurrent.TimeUnit.NANOSECONDS);
      }
    } catch (java.util.concurrent.TimeoutException e) {
      throw new InterruptedIOException("read timed out after " + (timeout == null ? "?" : timeout.toMillis())
          + " ms waiting for " + chunk + " from " + source.origin.urlOf(chunk.objectKey()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for " + chunk);
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException io) {
        // The fetch failed on a worker thread; callers see its own type (OriginException, ChunkCorruptException).
        throw io;
      }
      throw new IOException(c.getMessage(), c);
    }
  }

  /** The fetch task of a chunk not yet cached, queued at {@code priority} or raised to it; null when it is cached. */
  private Task start(ChunkRef chunk, FetchPriority priority, Source source) {
    if (cache.contains(chunk.key())) {
      return null;
    }
    boolean[] created = {false};
    // compute, not computeIfAbsent then add: a reader joining a task and the last other reader leaving it (release)
    // are ordered by the map, so a task is never dropped under a reader that just joined it
    Task task = inflight.compute(chunk.key(), (k, t) -> {
      if (t == null) {
        created[0] = true;
        return new Task(chunk, priority, source);
      }
      t.wanting.add(source);
      return t;
    });
    if (created[0]) {
      enqueue(task, priority);
    } else if (!task.started.get() && priority.compareTo(task.priority) < 0) {
      // Queue a more urgent copy; whichever copy a worker takes first runs, the other is skipped.
      task.priority = priority;
      enqueue(task, priority);
    }
    return task;
  }

  private void enqueue(Task task, FetchPriority priority) {
    Queued q = new Queued(task, priority, sequence.incrementAndGet());
    queue.add(q);
    if (priority == FetchPriority.BLOCKING) {
      blocking.add(q);
      synchronized (slots) {
        slots.notifyAll(); // a worker waiting for a slot puts its task back and takes this one
      }
    }
  }

  private void work(java.util.concurrent.BlockingQueue<Queued> from) {
    ByteBuffer buffer = null;
    while (!closed) {
      Queued q;
      try {
        q = from.take();
      } catch (InterruptedException e) {
        return;
      }
      if (q.task == null) {
        return; // close
      }
      if (q.task.started.get()) {
        continue; // a copy queued at another priority already ran
      }
      // a slot before the task is claimed: one raised to BLOCKING meanwhile is then taken by another worker
      boolean background = q.priority() != FetchPriority.BLOCKING;
      if (background) {
        Boolean slot = awaitBackgroundSlot(from);
        if (slot == null) {
          from.add(q); // a blocked read's fetch is queued: it goes first, this one waits its turn again
          continue;
        }
        if (!slot) {
          return;
        }
      }
      Task task = q.task;
      if (!task.started.compareAndSet(false, true) || closed) {
        if (background) {
          releaseBackgroundSlot(false);
        }
        if (closed) {
          task.done.completeExceptionally(new IllegalStateException("fetcher closed"));
          task.end();
        }
        continue;
      }
      Source source = task.source;
      source.started();
      int length = task.chunk.length();
      if (buffer == null || buffer.capacity() < length) {
        buffer = ByteBuffer.allocate(Math.max(length, 1 << 20));
      }
      boolean fetched = false;
      try {
        fetchInto(task, source, buffer);
        fetched = true;
        inflight.remove(task.chunk.key(), task);
        task.done.complete(null);
      } catch (Throwable e) {
        inflight.remove(task.chunk.key(), task);
        task.done.completeExceptionally(e);
      } finally {
        task.end(); // waits for readers copying from the buffer: it is reused for the next chunk
        source.finished();
        if (background) {
          releaseBackgroundSlot(fetched);
        }
      }
    }
  }

  private void fetchInto(Task task, Source source, ByteBuffer buffer) throws IOException {
    Origin origin = source.origin;
    ChunkRef chunk = task.chunk;
    String expected = chunk.hash() != null ? chunk.hash() : cache.recordedHash(chunk.key());
    String actual = null;
    long t0 = System.nanoTime();
    ChunkPeers p = source.peers;
    if (p != null && expected != null) {
      buffer.clear().limit(chunk.length());
      if (p.read(chunk, buffer)) {
        buffer.position(0).limit(chunk.length());
        if (expected.equals(Hashes.sha256Hex(buffer))) {
          buffer.position(0);
          source.bytesFromPeers.addAndGet(chunk.length());
          store(chunk, source, buffer, t0);
          return;
        }
        source.peerMisses.incrementAndGet();
        LOG.log(Level.WARNING, () -> "event=peer_chunk_corrupt chunk=" + chunk.key() + " action=origin");
      }
    }
    if (chunk.blocks() != null) {
      fetchBlocks(task, source, buffer);
      return;
    }
    for (int attempt = 1; attempt <= 2; attempt++) {
      buffer.clear().limit(chunk.length());
      origin.read(chunk.objectKey(), chunk.objectOffset(), buffer, chunk.ifMatch());
      buffer.flip();
      actual = Hashes.sha256Hex(buffer);
      source.bytesFetched.addAndGet(chunk.length());
      if (expected == null || expected.equals(actual)) {
        if (expected == null) {
          cache.recordHash(chunk.key(), actual);
        }
        store(chunk, source, buffer, t0);
        return;
      }
      source.corruptRefetches.incrementAndGet();
      String got = actual;
      LOG.log(Level.WARNING, () -> "event=chunk_corrupt chunk=" + chunk.key() + " url=" + origin.urlOf(chunk.objectKey())
          + " expected=" + expected + " got=" + got + " action=refetch");
    }
    throw new ChunkCorruptException("chunk " + chunk.key() + " from " + origin.urlOf(chunk.objectKey())
        + " is corrupt: expected sha256 " + expected + " but got " + actual + " on two fetches in a row");
  }

  /** Caches a verified chunk and counts it for the source that fetched it ({@code t0}: when its fetch began). */
  private void store(ChunkRef chunk, Source source, ByteBuffer buffer, long t0) throws IOException {
    source.stored.accept(chunk.key()); // before the chunk is visible: a reader meeting it must not hash it again
    cache.put(chunk.key(), buffer);
    source.chunksFetched.incrementAndGet();
    source.onFetched.accept(chunk, System.nanoTime() - t0);
  }

  /**
   * Fetches a chunk with block hashes, checking each block as it lands and letting blocked readers copy the blocks
   * that matched. The whole chunk is not hashed again: its blocks matching the manifest that named it is what this
   * reader needs, and any other reader hashes a cached chunk once before it first uses it (ModelReader#check), so a
   * manifest whose block hashes disagree with its chunk hash poisons nobody else's reads.
   */
  private void fetchBlocks(Task task, Source source, ByteBuffer buffer) throws IOException {
    Origin origin = source.origin;
    ChunkRef chunk = task.chunk;
    long t0 = System.nanoTime();
    BlockCheck check = null;
    for (int attempt = 1; attempt <= 2; attempt++) {
      buffer.clear().limit(chunk.length());
      task.arriving(buffer);
      check = new BlockCheck(task, buffer);
      origin.read(chunk.objectKey(), chunk.objectOffset(), buffer, chunk.ifMatch(), check);
      buffer.flip();
      source.bytesFetched.addAndGet(chunk.length());
      if (check.wrongBlock < 0 && check.next == chunk.blocks().count()) {
        store(chunk, source, buffer, t0);
        return;
      }
      source.corruptRefetches.incrementAndGet();
      BlockCheck c = check;
      LOG.log(Level.WARNING, () -> "event=chunk_corrupt chunk=" + chunk.key() + " url=" + origin.urlOf(chunk.objectKey())
          + " block=" + c.wrongBlock + " expected=" + chunk.blocks().hex(c.wrongBlock) + " got=" + c.wrongHash
          + " action=refetch");
    }
    throw new ChunkCorruptException("chunk " + chunk.key() + " from " + origin.urlOf(chunk.objectKey())
        + " is corrupt: block " + check.wrongBlock + " (bytes " + (long) check.wrongBlock * chunk.blocks().blockSize()
        + "..) should hash to sha256 " + chunk.blocks().hex(check.wrongBlock) + " but got " + check.wrongHash
        + " on two fetches in a row");
  }

  /** Hashes each block of a chunk as soon as it has arrived; tells the task how far the bytes matched. */
  private static final class BlockCheck implements Origin.ReadProgress {
    private final Task task;
    private final ByteBuffer buffer;
    private final BlockHashes blocks;
    private final byte[] digest = new byte[Hashes.LENGTH];
    int next; // the first block not yet checked
    int wrongBlock = -1;
    String wrongHash;

    BlockCheck(Task task, ByteBuffer buffer) {
      this.task = task;
      this.buffer = buffer;
      this.blocks = task.chunk.blocks();
    }

    @Override
    public void arrived(int position) {
      int size = blocks.blockSize();
      int length = task.chunk.length();
      while (wrongBlock < 0 && next < blocks.count()) {
        int end = (int) Math.min(length, (long) (next + 1) * size);
        if (position < end) {
          return;
        }
        Hashes.sha256(buffer.duplicate().limit(end).position(next * size), digest, 0);
        if (!blocks.matches(next, digest, 0)) {
          wrongBlock = next;
          wrongHash = Hashes.hex(digest);
          return; // nothing past a wrong block is exposed; the chunk is fetched again
        }
        next++;
        task.verified(end);
      }
    }

    @Override
    public void restarted() {
      next = 0;
      wrongBlock = -1;
      wrongHash = null;
      task.verified(0);
    }
  }

  /**
   * Ends a reader's side: its fetches no worker has started and no other reader waits for are dropped (their futures
   * fail), a fetch others wait for goes on with another's origin, and fetches under way for it finish first, briefly
   * (at most 2 s): a read may have been served from a fetch's first blocks, and the chunk is then still to be cached.
   */
  void release(Source source) {
    source.closed = true;
    IllegalStateException stop = new IllegalStateException("reader closed");
    for (Task task : inflight.values()) {
      Task[] dropped = {null};
      inflight.computeIfPresent(task.chunk.key(), (k, t) -> {
        if (t != task || !t.wanting.remove(source)) {
          return t;
        }
        if (t.wanting.isEmpty() && t.started.compareAndSet(false, true)) {
          dropped[0] = t; // wanted by nobody now and not started: no worker runs it
          return null;
        }
        if (t.source == source && !t.wanting.isEmpty()) {
          t.source = t.wanting.iterator().next();
        }
        return t;
      });
      if (dropped[0] != null) {
        dropped[0].done.completeExceptionally(stop);
        dropped[0].end();
      }
    }
    long deadline = System.nanoTime() + CLOSE_WAIT_NANOS;
    synchronized (source) {
      while (source.running > 0) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          return;
        }
        try {
          java.util.concurrent.TimeUnit.NANOSECONDS.timedWait(source, left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
    }
  }

  /**
   * Fails the fetches no worker has started and stops the workers. Fetches under way finish first, briefly (at most
   * 2 s): a read may have been served from a fetch's first blocks, and the chunk is then still to be cached; and a
   * worker inside a range request finishes it anyway (an interrupt does not stop a socket read), so the origin and the
   * cache are not closed under it (the S3 client logs each such request as an error).
   */
  @Override
  public void close() {
    closed = true;
    IllegalStateException stop = new IllegalStateException("fetcher closed");
    inflight.values().forEach(t -> {
      if (!t.started.get()) {
        t.done.completeExceptionally(stop);
        t.end();
      }
    });
    // Idle workers wait in a queue: one stop each (not an interrupt, which would also break a busy worker's cache write).
    int reserved = reservedForBlocking(workers.length);
    for (int i = 0; i < workers.length; i++) {
      (i < reserved ? blocking : queue).add(new Queued(null, FetchPriority.BLOCKING, Long.MIN_VALUE));
    }
    synchronized (slots) {
      slots.notifyAll();
    }
    long deadline = System.nanoTime() + CLOSE_WAIT_NANOS;
    for (Thread t : workers) {
      long left = deadline - System.nanoTime();
      if (left <= 0 || t == Thread.currentThread()) {
        continue;
      }
      try {
        t.join(java.time.Duration.ofNanos(left));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  /** Fetches no read waits for that may run at first; {@link #releaseBackgroundSlot} raises it. */
  static final int SLOW_START = 2;

  /**
   * Waits until a fetch no read waits for may start: true then; null when a blocked read's fetch is queued in
   * {@code from} meanwhile (to take first); false when the fetcher closed or the worker was interrupted.
   */
  private Boolean awaitBackgroundSlot(java.util.concurrent.BlockingQueue<Queued> from) {
    synchronized (slots) {
      while (backgroundRunning >= backgroundLimit) {
        if (closed) {
          return false;
        }
        Queued head = from.peek();
        if (head != null && head.priority() == FetchPriority.BLOCKING && (head.task == null || !head.task.started.get())) {
          return null;
        }
        try {
          slots.wait();
        } catch (InterruptedException e) {
          return false;
        }
      }
      backgroundRunning++;
      return true;
    }
  }

  private void releaseBackgroundSlot(boolean completed) {
    synchronized (slots) {
      backgroundRunning--;
      if (completed && backgroundLimit < backgroundMax) {
        backgroundLimit++;
      }
      slots.notifyAll();
    }
  }

  private static final long CLOSE_WAIT_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(2);
}
