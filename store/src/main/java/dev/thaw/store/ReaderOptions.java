package dev.thaw.store;

/**
 * How a {@link ModelReader} fetches.
 *
 * @param parallelism range requests in flight at once (per reader)
 * @param maxReadaheadChunks how far the sequential readahead window may grow, in chunks
 * @param recordProfile whether to record the order of first touches for {@link ModelReader#recordedProfile()}
 */
public record ReaderOptions(int parallelism, int maxReadaheadChunks, boolean recordProfile) {
  /** 16 parallel requests, readahead up to 8 chunks, recording on. */
  public static final ReaderOptions DEFAULT = new ReaderOptions(16, 8, true);

  public ReaderOptions {
    if (parallelism < 1 || maxReadaheadChunks < 0) {
      throw new IllegalArgumentException("parallelism must be >= 1 and readahead >= 0");
    }
  }

  public ReaderOptions withParallelism(int p) {
    return new ReaderOptions(p, maxReadaheadChunks, recordProfile);
  }

  public ReaderOptions withRecordProfile(boolean record) {
    return new ReaderOptions(parallelism, maxReadaheadChunks, record);
  }
}
