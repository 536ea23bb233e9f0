package dev.thaw.store;

import java.nio.ByteBuffer;

/**
 * Other nodes that may hold a model's chunks, asked before the origin. Whatever a peer sends is checked against the
 * chunk's hash like anything else, so a wrong or truncated answer costs a fetch from the origin, never a bad byte.
 */
public interface ChunkPeers {
  /**
   * Fills {@code into} (position 0, limit the chunk's length) with the chunk from some peer and returns true; false
   * when no peer had it or every peer asked failed.
   */
  boolean read(ChunkRef chunk, ByteBuffer into);
}
