package dev.thaw.store;

import java.io.IOException;
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

    Task(ChunkRef chunk, FetchPriority priority) {
      this.chunk = chunk;
      this.priority = priority;
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
    if (cache.contains(chunk.key())) {
      return CompletableFuture.completedFuture(null);
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
    return task.done;
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
      if (!task.started.compareAndSet(false, true)) {
        if (background) {
          releaseBackgroundSlot(false);
        }
        continue;
      }
      int length = task.chunk.length();
      if (buffer == null || buffer.capacity() < length) {
        buffer = ByteBuffer.allocate(Math.max(length, 1 << 20));
      }
      boolean fetched = false;
      try {
        fetchInto(task.chunk, buffer);
        fetched = true;
        inflight.remove(task.chunk.key(), task);
        task.done.complete(null);
      } catch (Throwable e) {
        inflight.remove(task.chunk.key(), task);
        task.done.completeExceptionally(e);
      } finally {
        if (background) {
          releaseBackgroundSlot(fetched);
        }
      }
    }
  }

  private void fetchInto(ChunkRef chunk, ByteBuffer buffer) throws IOException {
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

  @Override
  public void close() {
    closed = true;
    for (Thread t : workers) {
      t.interrupt();
    }
    IllegalStateException stop = new IllegalStateException("fetcher closed");
    inflight.values().forEach(t -> t.done.completeExceptionally(stop));
    // A worker inside a range request finishes it (an interrupt does not stop a socket read): let it, briefly, so the
    // origin and the cache are not closed under it (the S3 client logs each such request as an error).
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
        if (head != null && head.priority() == FetchPriority.BLOCKING && !head.task.started.get()) {
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
