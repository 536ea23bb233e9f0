package dev.thaw.store;

import java.time.Instant;

/**
 * What an origin lists about one object.
 *
 * @param key the object's key relative to the origin's root
 * @param size bytes
 * @param version what a range read must match to be sure the bytes are from this object: an S3 ETag, or a file's
 *     size, modification and change times and inode
 * @param lastModified when the object was last written
 * @param readMode who may read it, as the read bits of a file mode ({@code 0444} where the origin has no modes): a
 *     direct-mode mount shows the object no more widely than its source does
 */
public record ObjectInfo(String key, long size, String version, Instant lastModified, int readMode) {
  public ObjectInfo {
    readMode &= 0444;
  }

  /** An object of an origin without file modes (S3, HTTP): readable by all. */
  public ObjectInfo(String key, long size, String version, Instant lastModified) {
    this(key, size, version, lastModified, 0444);
  }
}
