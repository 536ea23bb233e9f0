package dev.thaw.placement;

import java.util.Map;

/**
 * Seconds until a new replica of a model serves on a node, from the best tier that has its bytes: its snapshot on the
 * node's disk (read at the local-disk rate, no boot); else its weights, the cached part from local disk and the rest
 * from a peer that holds them all (or the origin when none does), then the boot. A replica already running there
 * costs nothing; that is the plan's business, not this.
 */
public final class StartCost {
  private final Map<String, Integer> fullCopies;

  public StartCost(Cluster cluster) {
    this.fullCopies = cluster.fullCopies();
  }

  public double seconds(Model m, Node n) {
    Long snapshot = m.snapshotBytes().get(n.gpuModel());
    if (snapshot != null && n.snapshots().contains(m.id())) {
      return snapshot / n.bandwidth().localDisk();
    }
    double cached = n.cachedFraction(m.id());
    double local = cached * m.weightBytes();
    double missing = m.weightBytes() - local;
    // a peer: another node holding every byte (this node counts itself out when it is one of them)
    int others = fullCopies.getOrDefault(m.id(), 0) - (cached >= 1.0 ? 1 : 0);
    double remoteRate = others > 0 ? n.bandwidth().peer() : n.bandwidth().origin();
    return local / n.bandwidth().localDisk() + (missing > 0 ? missing / remoteRate : 0) + m.bootSeconds();
  }

  /** Which tier a start would read from: "snapshot", "local", "peer" or "origin". */
  public String tier(Model m, Node n) {
    if (m.snapshotBytes().containsKey(n.gpuModel()) && n.snapshots().contains(m.id())) {
      return "snapshot";
    }
    double cached = n.cachedFraction(m.id());
    if (cached >= 1.0) {
      return "local";
    }
    int others = fullCopies.getOrDefault(m.id(), 0);
    return others > 0 ? "peer" : "origin";
  }
}
