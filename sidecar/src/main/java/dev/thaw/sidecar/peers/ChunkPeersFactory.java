package dev.thaw.sidecar.peers;

import dev.thaw.store.ChunkPeers;
import java.util.Optional;

/** Where a sidecar's readers get the peers to ask for a model's chunks before the origin; none when standalone. */
@FunctionalInterface
public interface ChunkPeersFactory {
  /** No peers: every chunk comes from the cache or the origin. */
  ChunkPeersFactory NONE = digest -> Optional.empty();

  /** The peers to ask for the chunks of the model with manifest {@code digest}; empty when there are none. */
  Optional<ChunkPeers> forModel(String digest);
}
