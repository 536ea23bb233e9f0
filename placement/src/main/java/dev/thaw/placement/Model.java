package dev.thaw.placement;

import java.util.Map;
import java.util.Set;

/**
 * A model to serve.
 *
 * @param snapshotBytes GPU model to the bytes of a snapshot of a warm replica on that kind of node
 * @param gpuMemoryPerReplica GPU memory one replica needs, over its {@code gpusPerReplica} GPUs
 * @param bootSeconds a replica's boot without a snapshot, once its weights are local
 * @param gpuModels the GPU models it may run on; empty: any
 */
public record Model(String id, long weightBytes, Map<String, Long> snapshotBytes, int gpusPerReplica,
    long gpuMemoryPerReplica, double bootSeconds, Set<String> gpuModels, Demand demand) {
  public Model {
    java.util.Objects.requireNonNull(id, "a model needs an id");
    java.util.Objects.requireNonNull(demand, "model " + id + " needs its demand (replicas, or requestRate and perReplicaCapacity)");
    snapshotBytes = snapshotBytes == null ? Map.of() : snapshotBytes;
    gpuModels = gpuModels == null ? Set.of() : gpuModels;
    if (gpusPerReplica < 1) {
      throw new IllegalArgumentException("model " + id + ": a replica needs at least one GPU, not " + gpusPerReplica);
    }
    if (weightBytes < 0 || bootSeconds < 0) {
      throw new IllegalArgumentException("model " + id + ": negative size or boot time");
    }
    snapshotBytes = java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(snapshotBytes)); // a stable order
    gpuModels = java.util.Collections.unmodifiableSet(new java.util.TreeSet<>(gpuModels));
  }

  /**
   * How many replicas a model wants, and how much its cold starts weigh.
   *
   * @param replicas replicas wanted (used when {@code requestRate} is 0)
   * @param requestRate requests per second (0: not known)
   * @param perReplicaCapacity requests per second one replica serves
   */
  public record Demand(int replicas, double requestRate, double perReplicaCapacity) {
    public Demand {
      if (replicas < 0 || requestRate < 0 || (requestRate > 0 && !(perReplicaCapacity > 0))) {
        throw new IllegalArgumentException("invalid demand: " + replicas + " replicas, " + requestRate + " req/s at "
            + perReplicaCapacity + " per replica");
      }
    }

    public static Demand ofReplicas(int replicas) {
      return new Demand(replicas, 0, 0);
    }

    public int replicasWanted() {
      return requestRate > 0 ? (int) Math.ceil(requestRate / perReplicaCapacity - 1e-9) : replicas;
    }

    /** How much a second of this model's cold start costs: its request rate, or 1 when only replicas are known. */
    public double weight() {
      return requestRate > 0 ? requestRate : 1;
    }
  }

  /** Whether a replica fits a node's kind: an allowed GPU model, enough GPUs, enough memory on them. */
  public boolean runsOn(Node n) {
    return (gpuModels.isEmpty() || gpuModels.contains(n.gpuModel())) && n.gpuCount() >= gpusPerReplica
        && n.gpuMemoryBytes() * gpusPerReplica >= gpuMemoryPerReplica;
  }
}
