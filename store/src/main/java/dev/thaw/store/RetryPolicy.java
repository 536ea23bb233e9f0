package dev.thaw.store;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff with full jitter for transient origin faults (reset connections, timeouts, truncated
 * bodies, 5xx, 429). Other failures are thrown at once.
 *
 * @param maxAttempts total tries, the first included
 * @param initialBackoff the upper bound of the first wait
 * @param maxBackoff the cap on any wait
 */
public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff) {
  /** Five attempts, waits up to 100 ms, 200 ms, 400 ms, 800 ms. */
  public static final RetryPolicy DEFAULT = new RetryPolicy(5, Duration.ofMillis(100), Duration.ofSeconds(5));

  public RetryPolicy {
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be at least 1");
    }
  }

  /** How long to wait before attempt {@code attempt + 1} (attempt counts from 1). */
  Duration backoff(int attempt) {
    long cap = Math.min(maxBackoff.toMillis(), initialBackoff.toMillis() << Math.min(attempt - 1, 20));
    return Duration.ofMillis(ThreadLocalRandom.current().nextLong(cap / 2, cap + 1));
  }

  interface Call<T> {
    T run() throws OriginException;
  }

  <T> T run(Call<T> call) throws OriginException {
    java.util.List<OriginException> earlier = new java.util.ArrayList<>();
    for (int attempt = 1; ; attempt++) {
      try {
        return call.run();
      } catch (OriginException e) {
        if (!e.retryable() || attempt >= maxAttempts) {
          throw withEarlier(e.withAttempts(attempt), earlier);
        }
        earlier.add(e);
        try {
          Thread.sleep(backoff(attempt));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw withEarlier(e.withAttempts(attempt), earlier);
        }
      }
    }
  }

  /** The last failure, carrying the earlier attempts' as suppressed: each may have failed differently. */
  private static OriginException withEarlier(OriginException last, java.util.List<OriginException> earlier) {
    for (OriginException e : earlier) {
      if (e != last) {
        last.addSuppressed(e);
      }
    }
    return last;
  }
}
