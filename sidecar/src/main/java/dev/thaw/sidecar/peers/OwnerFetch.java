package dev.thaw.sidecar.peers;

import java.time.Duration;

/**
 * How this node fetches a chunk that a peer asks it for as the chunk's owner: through the model being read here that
 * has the chunk, from the origin, once for every member fetching that model. The sidecar's mounts are one.
 */
@FunctionalInterface
public interface OwnerFetch {
  /**
   * Fetches the chunk with {@code key} into this node's cache, waiting at most {@code timeout}; false when no model
   * read here has such a chunk.
   */
  boolean fetchOwned(String key, Duration timeout) throws Exception;
}
