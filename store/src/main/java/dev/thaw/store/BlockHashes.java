package dev.thaw.store;

import java.util.Arrays;

/**
 * The SHA-256 of each block of one chunk, from a version 2 manifest (docs/manifest.md): a read may be served as soon
 * as the blocks holding its bytes have arrived and matched, before the rest of the chunk is in. Every block is
 * {@link #blockSize()} bytes but a chunk's last, which may be shorter.
 */
public final class BlockHashes {
  private final int blockSize;
  private final byte[] raw; // shared with the file's other chunks
  private final int first; // index in raw, in hashes, of this chunk's first block
  private final int count;

  BlockHashes(int blockSize, byte[] raw, int first, int count) {
    this.blockSize = blockSize;
    this.raw = raw;
    this.first = first;
    this.count = count;
  }

  public int blockSize() {
    return blockSize;
  }

  /** Blocks in the chunk. */
  public int count() {
    return count;
  }

  /** Whether {@code digest} (raw, at {@code offset}) is the hash the manifest gives block {@code block}. */
  boolean matches(int block, byte[] digest, int offset) {
    int at = (first + block) * Hashes.LENGTH;
    return Arrays.equals(raw, at, at + Hashes.LENGTH, digest, offset, offset + Hashes.LENGTH);
  }

  /** Whether {@code other} gives the same block size and the same hash for every block. */
  boolean sameAs(BlockHashes other) {
    if (other == this) {
      return true;
    }
    return other != null && other.blockSize == blockSize && other.count == count
        && Arrays.equals(raw, first * Hashes.LENGTH, (first + count) * Hashes.LENGTH,
            other.raw, other.first * Hashes.LENGTH, (other.first + count) * Hashes.LENGTH);
  }

  /** Block {@code block}'s expected hash, in hex, for messages. */
  String hex(int block) {
    int at = (first + block) * Hashes.LENGTH;
    return Hashes.hex(Arrays.copyOfRange(raw, at, at + Hashes.LENGTH));
  }

  /** Blocks in a chunk of {@code length} bytes. */
  static int blocksIn(long length, int blockSize) {
    return (int) ((length + blockSize - 1) / blockSize);
  }
}
