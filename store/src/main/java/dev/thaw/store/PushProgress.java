package dev.thaw.store;

/** Receives a push's progress; called from worker threads. */
public interface PushProgress {
  PushProgress NONE = new PushProgress() {};

  /** The push found {@code totalBytes} in {@code files} files to hash. */
  default void started(long totalBytes, int files) {}

  default void hashed(long bytes) {}

  default void uploaded(long bytes) {}
}
