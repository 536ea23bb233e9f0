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
 */
public record ObjectInfo(String key, long size, String version, Instant lastModified) {}
