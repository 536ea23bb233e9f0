package dev.thaw.placement;

import java.util.Map;
import java.util.Set;

/**
 * A GPU node.
 *
 * @param gpuMemoryBytes memory of each GPU
 * @param cacheBytes capacity of its chunk cache
 * @param bandwidth bytes per second it reads from each tier
 * @param cachedWeights model id to the fraction (0 to 1) of its weights in this node's cache
 * @param snapshots ids of the models whose snapshot for this node's kind (its key matches) is on its local disk
 */
public record Node(String id, String zone, String gpuModel, int gpuCount, long gpuMemoryBytes, long cacheBytes,
    Bandwidth bandwidth, Map<String, Double> cachedWeights, Set<String> snapshots) {
  public Node {
    java.util.Objects.requireNonNull(id, "a node needs an id");
    java.util.Objects.requireNonNull(zone, "node " + id + " needs a zone");
    java.util.Objects.requireNonNull(gpuModel, "node " + id + " needs a gpuModel");
    java.util.Objects.requireNonNull(bandwidth, "node " + id + " needs its bandwidth (localDisk, peer, origin)");
    cachedWeights = cachedWeights == null ? Map.of() : cachedWeights;
    snapshots = snapshots == null ? Set.of() : snapshots;
    if (gpuCount < 0) {
      throw new IllegalArgumentException("node " + id + ": negative GPU count " + gpuCount);
    }
    for (Map.Entry<String, Double> e : cachedWeights.entrySet()) {
      if (!(e.getValue() >= 0 && e.getValue() <= 1)) {
        throw new IllegalArgumentException("node " + id + ": cached fraction of " + e.getKey() + " is " + e.getValue()
            + ", not between 0 and 1");
      }
    }
    cachedWeights = java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(cachedWeights)); // a stable order
    snapshots = java.util.Collections.unmodifiableSet(new java.util.TreeSet<>(snapshots));
  }

  /** Bytes per second from the node's local disk, from a peer node, and from the origin. */
  public record Bandwidth(double localDisk, double peer, double origin) {
    public Bandwidth {
      if (!(localDisk > 0 && peer > 0 && origin > 0)) {
        throw new IllegalArgumentException("bandwidths must be positive: " + localDisk + ", " + peer + ", " + origin);
      }
    }
  }

  /** This node with another count of GPUs (those free, say) and other holdings. */
  public Node with(int gpus, Map<String, Double> cached, Set<String> snapshotsHeld) {
    return new Node(id, zone, gpuModel, gpus, gpuMemoryBytes, cacheBytes, bandwidth, cached, snapshotsHeld);
  }

  public double cachedFraction(String model) {
    return cachedWeights.getOrDefault(model, 0.0);
  }
}
