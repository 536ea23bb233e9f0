package dev.thaw.store;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Pushes a directory into a store: chunks and hashes files in parallel, asks the origin which chunks it already
 * holds, uploads only the missing ones with bounded concurrency, then writes the manifest and, last, the tag, so
 * a reader never sees a manifest whose chunks are missing. Re-pushing an unchanged directory uploads nothing.
 */
public final class Pusher {
  /** 8 MiB: the chunk size chosen by measurement (docs/benchmarks.md). */
  public static final int DEFAULT_CHUNK_SIZE = 8 << 20;
  /** Existing chunks older than this are touched so a concurrent gc's grace period restarts for them. */
  static final Duration TOUCH_AFTER = Duration.ofHours(1);

  private final Origin origin;
  private final int chunkSize;
  private final int blockSize;
  private final int concurrency;
  private final PushProgress progress;

  /**
   * A pusher that lists block hashes ({@link #defaultBlockSize}) in a version 2 manifest when the chunk size allows.
   *
   * @param chunkSize bytes per chunk
   * @param concurrency chunks hashed and uploaded at once (each holds one chunk-sized buffer)
   */
  public Pusher(Origin origin, int chunkSize, int concurrency, PushProgress progress) {
    this(origin, chunkSize, defaultBlockSize(chunkSize), concurrency, progress);
  }

  /**
   * @param blockSize bytes per hashed block (see {@link Manifest.Builder#blockSize}), or 0 to write a version 1
   *     manifest without block hashes, as Thaw before block hashes did
   */
  public Pusher(Origin origin, int chunkSize, int blockSize, int concurrency, PushProgress progress) {
    if (!origin.writable()) {
      throw new IllegalArgumentException("cannot push to " + origin.uri() + ": the origin is read-only");
    }
    if (chunkSize <= 0 || chunkSize > Manifest.MAX_CHUNK_SIZE || concurrency < 1) {
      throw new IllegalArgumentException("chunk size must be in 1.." + Manifest.MAX_CHUNK_SIZE + " and concurrency >= 1");
    }
    this.origin = origin;
    if (blockSize != 0) {
      Manifest.builder(chunkSize).blockSize(blockSize); // refuses a size that does not fit the chunks
    }
    this.chunkSize = chunkSize;
    this.blockSize = blockSize;
    this.concurrency = concurrency;
    this.progress = progress;
  }

  /**
   * The block size a push hashes by default: {@link Manifest#DEFAULT_BLOCK_SIZE}, or for smaller chunks the largest
   * power of two that splits a chunk in at least two; 0 (no block hashes) when a chunk is too small to split so.
   */
  public static int defaultBlockSize(int chunkSize) {
    for (int b = Manifest.DEFAULT_BLOCK_SIZE; b >= Manifest.MIN_BLOCK_SIZE; b >>= 1) {
      if (b <= chunkSize / 2 && chunkSize % b == 0) {
        return b;
      }
    }
    return 0;
  }

  /**
   * What a push did.
   *
   * @param bytesHashed every byte of every file
   * @param bytesUploaded bytes of chunks the origin lacked
   */
  public record Result(
      ModelName name,
      String digest,
      int files,
      long chunks,
      long bytesHashed,
      long chunksUploaded,
      long bytesUploaded,
      Duration elapsed) {
    public double hashMBps() {
      return bytesHashed / 1e6 / Math.max(1e-9, elapsed.toNanos() / 1e9);
    }
  }

  /** {@code blocks}: the raw hashes of every block, chunk by chunk; null when the file lists none. */
  private record FileTask(String path, Path file, long size, int mode, byte[][] hashes, List<Integer> lengths, byte[] blocks) {}

  public Result push(Path dir, ModelName name) throws IOException {
    long start = System.nanoTime();
    Path root = dir.toAbsolutePath().normalize();
    if (!Files.isDirectory(root)) {
      throw new IOException("not a directory: " + dir);
    }
    Manifest.Builder builder = Manifest.builder(chunkSize);
    if (blockSize > 0) {
      builder.blockSize(blockSize);
    }
    List<FileTask> files = new ArrayList<>();
    try {
      scan(root, builder, files);
      // Refused here, before a byte is uploaded, is whatever a reader would refuse in the finished manifest.
      builder.checkTree();
    } catch (ManifestException e) {
      throw new ManifestException("cannot push " + dir + ": " + e.getMessage(), e);
    }
    long total = files.stream().mapToLong(FileTask::size).sum();
    progress.started(total, files.size());

    Set<String> seen = ConcurrentHashMap.newKeySet();
    AtomicLong hashed = new AtomicLong();
    AtomicLong uploaded = new AtomicLong();
    AtomicLong chunksUploaded = new AtomicLong();
    long chunks = 0;
    ThreadLocal<ByteBuffer> buffers = ThreadLocal.withInitial(() -> ByteBuffer.allocate(chunkSize));
    List<Future<?>> futures = new ArrayList<>();
    try (ExecutorService pool = Executors.newFixedThreadPool(concurrency, Thread.ofPlatform().daemon().name("thaw-push-", 0).factory())) {
      for (FileTask f : files) {
        for (int i = 0; i < f.hashes().length; i++) {
          int index = i;
          chunks++;
          futures.add(pool.submit(() -> {
            ByteBuffer buf = buffers.get();
            buf.clear().limit(f.lengths().get(index));
            try (FileChannel ch = FileChannel.open(f.file(), StandardOpenOption.READ)) {
              long pos = (long) index * chunkSize;
              while (buf.hasRemaining()) {
                if (ch.read(buf, pos + buf.position()) < 0) {
                  throw new IOException(f.file() + " shrank while it was pushed");
                }
              }
            }
            buf.flip();
            if (f.blocks() != null) {
              // Every chunk but the last is whole, so chunk i's blocks start at i times the blocks in a chunk.
              int first = index * (chunkSize / blockSize);
              for (int b = 0; b * blockSize < buf.limit(); b++) {
                ByteBuffer block = buf.duplicate().position(b * blockSize).limit(Math.min(buf.limit(), (b + 1) * blockSize));
                Hashes.sha256(block, f.blocks(), (first + b) * Hashes.LENGTH);
              }
            }
            String hash = Hashes.sha256Hex(buf);
            f.hashes()[index] = Hashes.unhex(hash);
            progress.hashed(buf.remaining());
            hashed.addAndGet(buf.remaining());
            if (seen.add(hash)) {
              String key = ChunkRef.objectKeyForHash(hash);
              Optional<ObjectInfo> existing = origin.stat(key);
              if (existing.isEmpty() || existing.get().size() != buf.remaining()) {
                int n = buf.remaining();
                origin.write(key, buf);
                uploaded.addAndGet(n);
                chunksUploaded.incrementAndGet();
                progress.uploaded(n);
              } else if (existing.get().lastModified().isBefore(Instant.now().minus(TOUCH_AFTER))) {
                origin.touch(key);
              }
            }
            return null;
          }));
        }
      }
      for (Future<?> fu : futures) {
        try {
          fu.get();
        } catch (ExecutionException e) {
          pool.shutdownNow();
          Throwable c = e.getCause();
          if (c instanceof IOException io) {
            throw new IOException("push of " + dir + " to " + origin.uri() + " failed: " + io.getMessage(), io);
          }
          throw new IOException("push of " + dir + " to " + origin.uri() + " failed: " + c, c);
        } catch (InterruptedException e) {
          pool.shutdownNow();
          Thread.currentThread().interrupt();
          throw new java.io.InterruptedIOException("push interrupted");
        }
      }
    }
    for (FileTask f : files) {
      builder.file(f.path(), f.mode(), List.of(f.hashes()), f.lengths(), f.blocks());
    }
    Manifest manifest = builder.build();
    // Every chunk is stored: only now may the manifest and then the tag appear.
    new ModelStore(origin).publish(manifest, name);
    return new Result(name, manifest.digest(), files.size(), chunks, hashed.get(), chunksUploaded.get(), uploaded.get(),
        Duration.ofNanos(System.nanoTime() - start));
  }

  private void scan(Path root, Manifest.Builder builder, List<FileTask> files) throws IOException {
    Files.walkFileTree(root, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) throws IOException {
        if (!d.equals(root)) {
          builder.directory(rel(d), mode(d, 0755));
        }
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
        String path = rel(f);
        if (attrs.isSymbolicLink()) {
          builder.symlink(path, Files.readSymbolicLink(f).toString());
        } else if (attrs.isRegularFile()) {
          long size = attrs.size();
          Manifest.Builder.checkChunkCount(path, size, chunkSize);
          List<Integer> lengths = new ArrayList<>();
          for (long off = 0; off < size; off += chunkSize) {
            lengths.add((int) Math.min(chunkSize, size - off));
          }
          long blocks = blockSize == 0 ? 0 : (size + blockSize - 1) / blockSize;
          // a file of more blocks than a manifest may list (1 TiB at 1 MiB blocks) is listed without them
          byte[] blockHashes = blocks == 0 || blocks > Manifest.MAX_BLOCKS_PER_FILE ? null : new byte[(int) blocks * Hashes.LENGTH];
          files.add(new FileTask(path, f, size, mode(f, 0644), new byte[lengths.size()][], lengths, blockHashes));
        } else {
          throw new IOException("cannot push " + f + ": not a regular file, directory or symlink");
        }
        return FileVisitResult.CONTINUE;
      }

      private String rel(Path p) {
        return root.relativize(p).toString().replace('\\', '/');
      }
    });
  }

  private static int mode(Path p, int fallback) throws IOException {
    try {
      Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS);
      int mode = 0;
      for (PosixFilePermission perm : perms) {
        mode |= 1 << (8 - perm.ordinal());
      }
      return mode;
    } catch (UnsupportedOperationException e) {
      return fallback;
    }
  }
}
