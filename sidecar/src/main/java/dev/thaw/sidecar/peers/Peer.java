package dev.thaw.sidecar.peers;

import java.util.Map;
import java.util.Set;

/**
 * Another member as the owner rule ({@link ChunkOwners}) sees it: its node name, where its peer endpoint answers (null
 * when it registered none), how much of each model it holds (by manifest digest, 0 to 1), and the models it is still
 * fetching (by manifest digest): those it owns some chunks of.
 */
public record Peer(String node, String url, Map<String, Double> held, Set<String> fetching) {
  public Peer {
    held = Map.copyOf(held);
    fetching = Set.copyOf(fetching);
  }

  /** How much of the model with manifest {@code digest} it holds, 0 to 1. */
  public double holds(String digest) {
    return held.getOrDefault(digest, 0.0);
  }
}
