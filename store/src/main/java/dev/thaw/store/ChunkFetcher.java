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
 * Fetches chunks from an origin into the cache: one fetch per chunk however many callers wait for it
 * (single flight), at most {@code parallelism} range requests at once, most urgent first
 * ({@link FetchPriority}). Each chunk is hashed as it arrives; a corrupt chunk is fetched again, and a chunk
 * corrupt twice fails with an error naming the chunk and the origin.
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

  private final Origin origin;
  private final ChunkCache cache;
  private final java.util.function.Consumer<String> stored;
  private final ConcurrentHashMap<String, Task> inflight = new ConcurrentHashMap<>();
  private final PriorityBlockingQueue<Queued> queue = new PriorityBlockingQueue<>();
  // Blocking fetches again, for the reserved workers; whichever worker takes a task first runs it.
  private final java.util.concurrent.LinkedBlockingQueue<Queued> blocking = new java.util.concurrent.LinkedBlockingQueue<>();
  private final AtomicLong sequence = new AtomicLong();
  private final Thread[] workers;
  private final AtomicLong bytesFetched = new AtomicLong();
  private final AtomicLong chunksFetched = new AtomicLong();
  private volatile java.util.function.ObjLongConsumer<ChunkRef> onFetched = (c, nanos) -> {};
  private volatile ChunkPeers peers;
  private final AtomicLong bytesFromPeers = new AtomicLong();
  private final AtomicLong peerMisses = new AtomicLong();
  private final AtomicLong corruptRefetches = new AtomicLong();
  private volatile boolean closed;
  private final Object slots = new Object();
  private final int backgroundMax;
  private int backgroundLimit; // guarded by slots
  private int backgroundRunning; // guarded by slots

  private static final class Task {
    final ChunkRef chunk;
    final CompletableFuture<Void> done = new CompletableFuture<>();
    final AtomicBoolean started = new AtomicBoolean();
    volatile FetchPriority priority;
    // While the chunk arrives: the worker's buffer and how many of its first bytes matched their block hashes.
    // Readers copy from it under this task's lock; the worker takes it back (ended) under the lock before reusing it.
    private ByteBuffer arriving; // guarded by this
    private int verified; // guarded by this
    private boolean ended; // guarded by this

    Task(ChunkRef chunk, FetchPriority priority) {
      this.chunk = chunk;
      this.priority = priority;
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

  /** @param stored told the key of every chunk this fetcher verified, just before it stores it */
  ChunkFetcher(Origin origin, ChunkCache cache, int parallelism, java.util.function.Consumer<String> stored) {
    if (parallelism < 1) {
      throw new IllegalArgumentException("parallelism must be at least 1");
    }
    this.origin = origin;
    this.cache = cache;
    this.stored = stored;
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

  /** Workers of {@code parallelism} that take blocked reads' fetches only: one in eight, none below four. */
  static int reservedForBlocking(int parallelism) {
    return parallelism < 4 ? 0 : Math.max(1, parallelism / 8);
  }

  Origin origin() {
    return origin;
  }

  /** Told of every chunk fetched, verified and cached, with the nanoseconds its fetch took. */
  void onFetched(java.util.function.ObjLongConsumer<ChunkRef> listener) {
    onFetched = listener;
  }

  /** Peers to ask before the origin for chunks whose hash is known; null: the origin only. */
  void peers(ChunkPeers p) {
    peers = p;
  }

  long bytesFromPeers() {
    return bytesFromPeers.get();
  }

  /** Chunks a peer was asked for but sent wrong bytes for (they came from the origin instead). */
  long peerMisses() {
    return peerMisses.get();
  }

  long bytesFetched() {
    return bytesFetched.get();
  }

  long chunksFetched() {
    return chunksFetched.get();
  }

  long corruptRefetches() {
    return corruptRefetches.get();
  }

  /** Completes when the chunk is in the cache; a queued fetch is raised to {@code priority} if that is more urgent. */
  CompletableFuture<Void> fetch(ChunkRef chunk, FetchPriority priority) {
    if (closed) {
      return CompletableFuture.failedFuture(new IllegalStateException("fetcher closed"));
    }
    Task task = start(chunk, priority);
    return task == null ? CompletableFuture.completedFuture(null) : task.done;
  }

  /**
   * Copies {@code dst.remaining()} bytes of {@code chunk} from {@code offsetInChunk} into {@code dst} as soon as the
   * blocks holding them have arrived and matched their hashes, fetching the chunk as a blocked read would.
   *
   * @return the bytes copied, or -1 when they cannot be had so: the chunk has no block hashes or is cached already,
   *     its fetch ended (cached, or failed: {@link #fetch} tells which) or {@code deadlineNanos} passed first
   */
  int readArriving(ChunkRef chunk, long offsetInChunk, ByteBuffer dst, long deadlineNanos) throws InterruptedIOException {
    if (chunk.blocks() == null || closed) {
      return -1;
    }
    Task task = start(chunk, FetchPriority.BLOCKING);
    if (task == null) {
      return -1;
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

  /** The fetch task of a chunk not yet cached, queued at {@code priority} or raised to it; null when it is cached. */
  private Task start(ChunkRef chunk, FetchPriority priority) {
    if (cache.contains(chunk.key())) {
      return null;
    }
    boolean[] created = {false};
    Task task = inflight.computeIfAbsent(chunk.key(), k -> {
      created[0] = true;
      return new Task(chunk, priority);
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
      int length = task.chunk.length();
      if (buffer == null || buffer.capacity() < length) {
        buffer = ByteBuffer.allocate(Math.max(length, 1 << 20));
      }
      boolean fetched = false;
      try {
        fetchInto(task, buffer);
        fetched = true;
        inflight.remove(task.chunk.key(), task);
        task.done.complete(null);
      } catch (Throwable e) {
        inflight.remove(task.chunk.key(), task);
        task.done.completeExceptionally(e);
      } finally {
        task.end(); // waits for readers copying from the buffer: it is reused for the next chunk
        if (background) {
          releaseBackgroundSlot(fetched);
        }
      }
    }
  }

  private void fetchInto(Task task, ByteBuffer buffer) throws IOException {
    ChunkRef chunk = task.chunk;
    String expected = chunk.hash() != null ? chunk.hash() : cache.recordedHash(chunk.key());
    String actual = null;
    long t0 = System.nanoTime();
    ChunkPeers p = peers;
    if (p != null && expected != null) {
      buffer.clear().limit(chunk.length());
      if (p.read(chunk, buffer)) {
        buffer.position(0).limit(chunk.length());
        if (expected.equals(Hashes.sha256Hex(buffer))) {
          buffer.position(0);
          stored.accept(chunk.key()); // before the chunk is visible: a reader meeting it must not hash it again
          cache.put(chunk.key(), buffer);
          bytesFromPeers.addAndGet(chunk.length());
          chunksFetched.incrementAndGet();
          onFetched.accept(chunk, System.nanoTime() - t0);
          return;
        }
        peerMisses.incrementAndGet();
        LOG.log(Level.WARNING, () -> "event=peer_chunk_corrupt chunk=" + chunk.key() + " action=origin");
      }
    }
    if (chunk.blocks() != null) {
      fetchBlocks(task, buffer);
      return;
    }
    for (int attempt = 1; attempt <= 2; attempt++) {
      buffer.clear().limit(chunk.length());
      origin.read(chunk.objectKey(), chunk.objectOffset(), buffer, chunk.ifMatch());
      buffer.flip();
      actual = Hashes.sha256Hex(buffer);
      bytesFetched.addAndGet(chunk.length());
      if (expected == null || expected.equals(actual)) {
        if (expected == null) {
          cache.recordHash(chunk.key(), actual);
        }
        stored.accept(chunk.key()); // before the chunk is visible, as above
        cache.put(chunk.key(), buffer);
        chunksFetched.incrementAndGet();
        onFetched.accept(chunk, System.nanoTime() - t0);
        return;
      }
      corruptRefetches.incrementAndGet();
      String got = actual;
      LOG.log(Level.WARNING, () -> "event=chunk_corrupt chunk=" + chunk.key() + " url=" + origin.urlOf(chunk.objectKey())
          + " expected=" + expected + " got=" + got + " action=refetch");
    }
    throw new ChunkCorruptException("chunk " + chunk.key() + " from " + origin.urlOf(chunk.objectKey())
        + " is corrupt: expected sha256 " + expected + " but got " + actual + " on two fetches in a row");
  }

  /**
   * Fetches a chunk with block hashes, checking each block as it lands and letting blocked readers copy the blocks
   * that matched. The whole chunk is not hashed again: its blocks matching the manifest that named it is what this
   * reader needs, and any other reader hashes a cached chunk once before it first uses it (ModelReader#check), so a
   * manifest whose block hashes disagree with its chunk hash poisons nobody else's reads.
   */
  private void fetchBlocks(Task task, ByteBuffer buffer) throws IOException {
    ChunkRef chunk = task.chunk;
    long t0 = System.nanoTime();
    BlockCheck check = null;
    for (int attempt = 1; attempt <= 2; attempt++) {
      buffer.clear().limit(chunk.length());
      task.arriving(buffer);
      check = new BlockCheck(task, buffer);
      origin.read(chunk.objectKey(), chunk.objectOffset(), buffer, chunk.ifMatch(), check);
      buffer.flip();
      bytesFetched.addAndGet(chunk.length());
      if (check.wrongBlock < 0 && check.next == chunk.blocks().count()) {
        stored.accept(chunk.key()); // before the chunk is visible, as in fetchInto
        cache.put(chunk.key(), buffer);
        chunksFetched.incrementAndGet();
        onFetched.accept(chunk, System.nanoTime() - t0);
        return;
      }
      corruptRefetches.incrementAndGet();
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
