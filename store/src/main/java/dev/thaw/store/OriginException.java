package dev.thaw.store;

import java.io.IOException;

/**
 * An origin request that failed. The message names the operation, the URL, the HTTP status (when there was
 * one), the number of attempts made and the cause.
 */
public class OriginException extends IOException {
  /** Status of a failure that was not an HTTP answer (a reset connection, a timeout, a truncated body). */
  public static final int NO_STATUS = -1;

  private final String url;
  private final int status;
  private final boolean retryable;
  private final int attempts;

  public OriginException(String url, int status, boolean retryable, String message, Throwable cause) {
    this(url, status, retryable, 1, message, cause);
  }

  OriginException(String url, int status, boolean retryable, int attempts, String message, Throwable cause) {
    super(message, cause);
    this.url = url;
    this.status = status;
    this.retryable = retryable;
    this.attempts = attempts;
  }

  /** The URL of the object or request that failed. */
  public String url() {
    return url;
  }

  /** The HTTP status, or {@link #NO_STATUS}. */
  public int status() {
    return status;
  }

  /** Whether trying again may succeed: connection faults, timeouts, 5xx and 429 are; other 4xx are not. */
  public boolean retryable() {
    return retryable;
  }

  public int attempts() {
    return attempts;
  }

  public boolean isNotFound() {
    return status == 404;
  }

  /** True when the object changed since it was listed (HTTP 412 on If-Match, or a changed file). */
  public boolean isChanged() {
    return status == 412;
  }

  OriginException withAttempts(int n) {
    // The undecorated message: getMessage() adds the URL, status and attempts, which must not repeat.
    return new OriginException(url, status, retryable, n, rawMessage(), getCause());
  }

  /** The message as given, without the URL, status, attempts and cause that {@link #getMessage()} adds. */
  String rawMessage() {
    return super.getMessage();
  }

  @Override
  public String getMessage() {
    String base = super.getMessage();
    StringBuilder s = new StringBuilder(base == null ? "origin request failed" : base);
    if (base == null || !base.contains(url)) {
      s.append(" [").append(url).append(']');
    }
    if (status != NO_STATUS) {
      s.append(" (HTTP ").append(status).append(')');
    }
    if (attempts > 1) {
      s.append(" after ").append(attempts).append(" attempts");
    }
    if (getCause() != null && getCause().getMessage() != null && !s.toString().contains(getCause().getMessage())) {
      s.append(": ").append(getCause().getClass().getSimpleName()).append(": ").append(getCause().getMessage());
    }
    return s.toString();
  }

  static OriginException notFound(String url) {
    return new OriginException(url, 404, false, "not found: " + url, null);
  }
}
