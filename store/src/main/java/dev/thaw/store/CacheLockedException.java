package dev.thaw.store;

/** Another process (or another cache in this one) owns the cache directory. */
public final class CacheLockedException extends IllegalStateException {
  public CacheLockedException(String message) {
    super(message);
  }
}
