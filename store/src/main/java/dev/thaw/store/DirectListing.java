package dev.thaw.store;

/**
 * Direct mode: a manifest built from the listing of ordinary objects (an S3 prefix or a directory), read without
 * pushing. Each chunk is a byte range of its object, read with the listed version as {@code If-Match}, so a
 * changed object is an error and never mixes bytes; a chunk's hash is recorded when first fetched and later
 * fetches are verified against it. A file is shown read-only and no more widely than its source allows.
 */
public final class DirectListing {
  private DirectListing() {}

  /** Lists every object under the origin's root. */
  public static Manifest list(Origin origin, int chunkSize) throws OriginException {
    Manifest.Builder b = Manifest.directBuilder(chunkSize, origin.uri());
    for (ObjectInfo o : origin.list("")) {
      if (o.version() == null) {
        throw new OriginException(origin.urlOf(o.key()), OriginException.NO_STATUS, false,
            "origin listed " + origin.urlOf(o.key()) + " without a version (ETag); direct mode needs one", null);
      }
      b.directFile(o.key(), o.size(), o.readMode(), o.key(), o.version());
    }
    return b.build();
  }
}
