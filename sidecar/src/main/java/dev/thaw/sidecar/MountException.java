package dev.thaw.sidecar;

/**
 * A mount that {@link MountService} refuses or cannot make: what kind of failure, the request field at fault (or null)
 * and what is wrong, in words. The API maps the kind to an HTTP status ({@link ApiExceptionHandler}); other callers
 * (a restore mounting a model again) read the message.
 */
public final class MountException extends RuntimeException {
  /** What went wrong, as a caller decides what to do about it. */
  public enum Kind {
    /** A field of the request is missing or invalid. */
    INVALID,
    /** No such mount, model or profile. */
    NOT_FOUND,
    /** The path is taken. */
    CONFLICT,
    /** An origin or direct-mode source this sidecar may not read from. */
    FORBIDDEN,
    /** The origin failed (its URL, status and cause in the message). */
    ORIGIN_FAILED,
    /** Anything else. */
    FAILED
  }

  private final Kind kind;
  private final String field;

  MountException(Kind kind, String field, String message) {
    super(message);
    this.kind = kind;
    this.field = field;
  }

  MountException(Kind kind, String field, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
    this.field = field;
  }

  static MountException invalid(String field, String message) {
    return new MountException(Kind.INVALID, field, message);
  }

  public Kind kind() {
    return kind;
  }

  /** The request field at fault, or null. */
  public String field() {
    return field;
  }
}
