package dev.thaw.store;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * Where model bytes live: a flat namespace of objects under a root, each read by byte range. Implementations
 * exist for {@code file://}, {@code http(s)://} (read-only) and {@code s3://}; {@link Origins#open} picks one
 * and wraps it with retries. Keys are slash-separated and relative to the root.
 *
 * <p>Layout of a Thaw store at an origin (docs/manifest.md): {@code chunks/<2 hex>/<sha256>},
 * {@code manifests/<sha256>.json}, {@code tags/<name>/<tag>}, {@code profiles/<sha256>.json}.
 */
public interface Origin extends AutoCloseable {
  /** The origin's root, as given (credentials never appear here). */
  String uri();

  /** The full URL of {@code key}, for error messages. */
  default String urlOf(String key) {
    String root = uri();
    return root.endsWith("/") ? root + key : root + "/" + key;
  }

  /** Whether {@link #write}, {@link #delete} and {@link #touch} are supported. */
  boolean writable();

  /**
   * Reads exactly {@code dst.remaining()} bytes of {@code key} starting at {@code offset} into {@code dst}.
   *
   * @param ifMatch the version the object must still have (see {@link ObjectInfo#version()}), or null
   * @throws OriginException with status 404 when missing, 412 when the object changed, and retryable for
   *     transient faults; a body shorter than asked is a retryable failure, never a short read
   */
  void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException;

  /**
   * As {@link #read(String, long, ByteBuffer, String)}, telling {@code progress} as the bytes land, so a caller can
   * check and use the front of a range before its end arrives. This default tells it once, at the end.
   */
  default void read(String key, long offset, ByteBuffer dst, String ifMatch, ReadProgress progress)
      throws OriginException {
    read(key, offset, dst, ifMatch);
    progress.arrived(dst.position());
  }

  /** What a range read tells, on the reading thread, while its bytes land in the buffer. */
  interface ReadProgress {
    /** Tells nothing. */
    ReadProgress NONE = new ReadProgress() {
      @Override
      public void arrived(int position) {}

      @Override
      public void restarted() {}
    };

    /** The buffer holds the range's bytes from where the read started up to {@code position}. */
    void arrived(int position);

    /** The read starts again from its first byte (a retry): bytes told of before are about to be overwritten. */
    void restarted();
  }

  /** Reads a whole small object (manifest, tag, profile). */
  byte[] readAll(String key) throws OriginException;

  /** The object's size and version, or empty when it does not exist. */
  Optional<ObjectInfo> stat(String key) throws OriginException;

  /** Every object whose key starts with {@code prefix}, in key order. */
  List<ObjectInfo> list(String prefix) throws OriginException;

  /** Stores an object atomically: a reader sees the old object, no object, or all of the new one. */
  void write(String key, ByteBuffer data) throws OriginException;

  /** Deletes an object; deleting a missing object is not an error. */
  void delete(String key) throws OriginException;

  /** Marks an existing object as recently used, so garbage collection's grace period restarts. */
  void touch(String key) throws OriginException;

  @Override
  default void close() {}
}
