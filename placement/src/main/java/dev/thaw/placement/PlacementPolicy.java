package dev.thaw.placement;

/** Turns a cluster (nodes, models and their demand, replicas running now) into a plan. */
public interface PlacementPolicy {
  /** The policy's name in reports: {@code thaw}, {@code spread}, {@code image_locality}, ... */
  String name();

  Plan place(Cluster cluster);
}
