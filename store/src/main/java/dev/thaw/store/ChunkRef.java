package dev.thaw.store;

/**
 * One chunk of a file and where its bytes live.
 *
 * @param key the chunk's name in the cache: its content hash for pushed models, a name derived from the object,
 *     its version and the range for direct-mode models
 * @param hash the expected SHA-256 (hex), or {@code null} for a direct-mode chunk whose hash is recorded when it
 *     is first fetched
 * @param index the chunk's position in its file
 * @param fileOffset where the chunk starts in its file
 * @param length bytes in the chunk
 * @param objectKey the origin object holding the bytes, relative to the origin's root
 * @param objectOffset where the chunk starts in that object
 * @param ifMatch the object version the bytes must come from (an S3 ETag, or a file's size, mtime, ctime and inode), or null
 * @param blocks the hash of each block of the chunk (version 2 manifests), or {@code null}: then a read waits for the
 *     whole chunk and its hash
 */
public record ChunkRef(
    String key,
    String hash,
    int index,
    long fileOffset,
    int length,
    String objectKey,
    long objectOffset,
    String ifMatch,
    BlockHashes blocks) {

  /** A chunk without block hashes. */
  public ChunkRef(
      String key, String hash, int index, long fileOffset, int length, String objectKey, long objectOffset, String ifMatch) {
    this(key, hash, index, fileOffset, length, objectKey, objectOffset, ifMatch, null);
  }

  /** The origin object key of a content-addressed chunk. */
  public static String objectKeyForHash(String hash) {
    return "chunks/" + hash.substring(0, 2) + "/" + hash;
  }

  static ChunkRef pushed(String hash, int index, long fileOffset, int length, BlockHashes blocks) {
    return new ChunkRef(hash, hash, index, fileOffset, length, objectKeyForHash(hash), 0, null, blocks);
  }

  @Override
  public String toString() {
    return "chunk " + key + " (" + objectKey + " @" + objectOffset + "+" + length + ")";
  }
}
