package dev.thaw.placement;

import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * The placement rules Thaw's solver is compared with, all through {@link GreedyPlacer}'s shared mechanics (what runs
 * stays; missing replicas go one at a time to a node that fits):
 * <ul>
 *   <li>{@link #spread}: the least-loaded node (fraction of its GPUs in use);
 *   <li>{@link #imageLocality}: Kubernetes' ImageLocality score, the model's cached bytes on the node scaled by the
 *       fraction of nodes holding them (so one node full of a popular image does not attract everything);
 *   <li>{@link #startupGreedy}: ServerlessLLM's rule, the node with the least estimated time to start
 *       ({@link StartCost});
 *   <li>{@link #random}: any node that fits, from a seeded generator.
 * </ul>
 * Ties go to the least-loaded node, then the node id, so every rule is deterministic.
 */
public final class Baselines {
  private Baselines() {}

  private static final Comparator<Node> BY_ID = Comparator.comparing(Node::id);

  public static PlacementPolicy spread(CostModel costs) {
    return new GreedyPlacer("spread", (m, fitting, u) -> fitting.stream()
        .min(Comparator.comparingDouble(u::load).thenComparing(BY_ID)).orElseThrow(), costs);
  }

  public static PlacementPolicy imageLocality(CostModel costs) {
    return new GreedyPlacer("image_locality", (m, fitting, u) -> {
      double spread = u.cluster.nodes().isEmpty() ? 0 : partialHolders(u.cluster, m) / (double) u.cluster.nodes().size();
      return fitting.stream().min(Comparator.comparingDouble((Node n) -> -n.cachedFraction(m.id()) * m.weightBytes() * spread)
          .thenComparingDouble(u::load).thenComparing(BY_ID)).orElseThrow();
    }, costs);
  }

  public static PlacementPolicy startupGreedy(CostModel costs) {
    return new GreedyPlacer("startup_greedy", (m, fitting, u) -> fitting.stream()
        .min(Comparator.comparingDouble((Node n) -> u.seconds(m, n)).thenComparingDouble(u::load)
            .thenComparing(BY_ID)).orElseThrow(), costs);
  }

  public static PlacementPolicy random(long seed, CostModel costs) {
    return new PlacementPolicy() {
      @Override
      public String name() {
        return "random";
      }

      @Override
      public Plan place(Cluster cluster) {
        Random r = new Random(seed); // afresh for every plan: the same seed, the same plan
        return new GreedyPlacer("random", (m, fitting, u) -> fitting.get(r.nextInt(fitting.size())), costs)
            .place(cluster);
      }
    };
  }

  /** Every baseline, in report order. */
  public static List<PlacementPolicy> all(long seed, CostModel costs) {
    return List.of(spread(costs), imageLocality(costs), startupGreedy(costs), random(seed, costs));
  }

  private static int partialHolders(Cluster c, Model m) {
    int k = 0;
    for (Node n : c.nodes()) {
      if (n.cachedFraction(m.id()) > 0) {
        k++;
      }
    }
    return k;
  }
}
