package dev.thaw.store;

/** A manifest that cannot be accepted: malformed, of an unknown version, or with an unsafe entry. */
public final class ManifestException extends RuntimeException {
  public ManifestException(String message) {
    super(message);
  }

  public ManifestException(String message, Throwable cause) {
    super(message, cause);
  }
}
