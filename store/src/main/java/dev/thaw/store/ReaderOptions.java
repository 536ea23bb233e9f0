package dev.thaw.store;

import java.time.Duration;

/**
 * How a {@link ModelReader} fetches.
 *
 * @param parallelism range requests in flight at once (per reader)
 * @param maxReadaheadChunks how far the sequential readahead window may grow, in chunks
 * @param recordProfile whether to record the order of first touches for {@link ModelReader#recordedProfile()}
 * @param readTimeout how long a read may wait for a chunk before it fails (retries included); null waits as long
 *     as the origin's retries take
 */
public record ReaderOptions(int parallelism, int maxReadaheadChunks, boolean recordProfile, Duration readTimeout) {
  /** 16 parallel requests, readahead up to 8 chunks, recording on, no read timeout. */
  public static final ReaderOptions DEFAULT = new ReaderOptions(16, 8, true, null);

  public ReaderOptions {
    if (parallelism < 1 || maxReadaheadChunks < 0) {
      throw new IllegalArgumentException("parallelism must be >= 1 and readahead >= 0");
    }
    if (readTimeout != null && (readTimeout.isNegative() || readTimeout.isZero())) {
      throw new IllegalArgumentException("read timeout must be positive, got " + readTimeout);
    }
  }

  public ReaderOptions(int parallelism, int maxReadaheadChunks, boolean recordProfile) {
    this(parallelism, maxReadaheadChunks, recordProfile, null);
  }

  public ReaderOptions withParallelism(int p) {
    return new ReaderOptions(p, maxReadaheadChunks, recordProfile, readTimeout);
  }

  public ReaderOptions withRecordProfile(boolean record) {
    return new ReaderOptions(parallelism, maxReadaheadChunks, record, readTimeout);
  }

  public ReaderOptions withReadTimeout(Duration timeout) {
    return new ReaderOptions(parallelism, maxReadaheadChunks, recordProfile, timeout);
  }
}
