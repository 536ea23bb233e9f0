package dev.thaw.store;

import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;

/**
 * A regular file: its size, mode and chunks. The chunk list stays in its compact encoded form (base64 of the
 * concatenated raw hashes, lengths run-length encoded) until the file is first opened, so a manifest of a
 * terabyte model with 10^5 chunks loads its tree at once.
 */
public final class FileEntry implements Entry {
  private final String path;
  private final long size;
  private final int mode;
  private final String encodedHashes; // null in direct mode
  private final long[] lengthRuns; // pairs: length, count
  private final String objectKey; // direct mode: the object holding the file
  private final String version; // direct mode: ETag, or size, mtime, ctime and inode
  private final String chunkKeySeed; // direct mode: what names the chunks in the cache
  private final String encodedBlocks; // version 2: base64 of every block's hash, chunk by chunk; else null
  private final int blockSize; // with encodedBlocks
  private volatile List<ChunkRef> chunks;

  FileEntry(
      String path,
      long size,
      int mode,
      String encodedHashes,
      long[] lengthRuns,
      String objectKey,
      String version,
      String chunkKeySeed,
      String encodedBlocks,
      int blockSize) {
    this.path = path;
    this.size = size;
    this.mode = mode;
    this.encodedHashes = encodedHashes;
    this.lengthRuns = lengthRuns;
    this.objectKey = objectKey;
    this.version = version;
    this.chunkKeySeed = chunkKeySeed;
    this.encodedBlocks = encodedBlocks;
    this.blockSize = blockSize;
  }

  @Override
  public String path() {
    return path;
  }

  @Override
  public int mode() {
    return mode;
  }

  public long size() {
    return size;
  }

  /** True for a file read in direct mode from an ordinary object, not from pushed chunks. */
  public boolean isDirect() {
    return encodedHashes == null;
  }

  /** The object version direct reads must match (ETag, or size, mtime, ctime and inode); null for pushed files. */
  public String version() {
    return version;
  }

  /** The origin object a direct-mode file reads from; null for pushed files. */
  public String objectKey() {
    return objectKey;
  }

  String encodedHashes() {
    return encodedHashes;
  }

  /** Base64 of the hash of every block, chunk by chunk; null when the manifest gives none for this file. */
  String encodedBlocks() {
    return encodedBlocks;
  }

  long[] lengthRuns() {
    return lengthRuns;
  }

  public int chunkCount() {
    long n = 0;
    for (int i = 1; i < lengthRuns.length; i += 2) {
      n += lengthRuns[i];
    }
    return (int) n;
  }

  /** The file's chunks in order, decoded on first use. */
  public List<ChunkRef> chunks() {
    List<ChunkRef> result = chunks;
    if (result == null) {
      synchronized (this) {
        result = chunks;
        if (result == null) {
          result = decode();
          chunks = result;
        }
      }
    }
    return result;
  }

  /** The index of the chunk holding byte {@code offset}; offset must be below the size. */
  public int chunkIndexAt(long offset) {
    List<ChunkRef> list = chunks();
    int lo = 0;
    int hi = list.size() - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (list.get(mid).fileOffset() <= offset) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  private List<ChunkRef> decode() {
    int count = chunkCount();
    byte[] raw = null;
    if (encodedHashes != null) {
      try {
        raw = Base64.getDecoder().decode(encodedHashes);
      } catch (IllegalArgumentException e) {
        throw new ManifestException("entry '" + path + "': chunk hashes are not valid base64", e);
      }
      if (raw.length != count * Hashes.LENGTH) {
        throw new ManifestException(
            "entry '" + path + "': " + raw.length / Hashes.LENGTH + " chunk hashes for " + count + " chunks");
      }
    }
    byte[] blocks = null;
    if (encodedBlocks != null) {
      try {
        blocks = Base64.getDecoder().decode(encodedBlocks);
      } catch (IllegalArgumentException e) {
        throw new ManifestException("entry '" + path + "': block hashes are not valid base64", e);
      }
    }
    List<ChunkRef> list = new ArrayList<>(count);
    int block = 0;
    long offset = 0;
    int index = 0;
    byte[] one = new byte[Hashes.LENGTH];
    for (int r = 0; r < lengthRuns.length; r += 2) {
      int length = (int) lengthRuns[r];
      for (long k = 0; k < lengthRuns[r + 1]; k++) {
        if (raw != null) {
          System.arraycopy(raw, index * Hashes.LENGTH, one, 0, Hashes.LENGTH);
          BlockHashes b = null;
          if (blocks != null) {
            int n = BlockHashes.blocksIn(length, blockSize);
            b = new BlockHashes(blockSize, blocks, block, n);
            block += n;
          }
          list.add(ChunkRef.pushed(Hashes.hex(one), index, offset, length, b));
        } else {
          String key = "d" + Hashes.sha256Hex(
              (chunkKeySeed + "\n" + objectKey + "\n" + version + "\n" + offset + "\n" + length)
                  .getBytes(java.nio.charset.StandardCharsets.UTF_8));
          list.add(new ChunkRef(key, null, index, offset, length, objectKey, offset, version));
        }
        offset += length;
        index++;
      }
    }
    if (blocks != null && blocks.length != (long) block * Hashes.LENGTH) {
      throw new ManifestException("entry '" + path + "': " + blocks.length / Hashes.LENGTH + " block hashes for " + block + " blocks");
    }
    return Collections.unmodifiableList(list);
  }

  @Override
  public String toString() {
    return "file " + path + " (" + size + " bytes, " + chunkCount() + " chunks)";
  }
}
