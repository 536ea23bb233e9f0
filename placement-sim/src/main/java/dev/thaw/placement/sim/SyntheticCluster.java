package dev.thaw.placement.sim;

import dev.thaw.placement.Baselines;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.CostModel;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.Plan;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * A cluster that looks like a real one, from a size and a seed: what {@code --nodes N} alone gives, and the instances
 * of the solver's scale benchmark.
 *
 * <ul>
 *   <li>Nodes, over {@code max(2, min(8, nodes / 100 + 2))} zones: 30 % with 8 x H100 80 GB, 30 % with 8 x A100 40 GB,
 *       40 % with 4 x L4 24 GB; local disk 2 GB/s, peers 1.25 GB/s (10 GbE), origin 0.2 GB/s; 2 TB of cache.
 *   <li>Models: weights log-uniform between 1 and 70 GB (fp16: 0.5 to 35 B parameters); a replica needs 1.2 x its
 *       weights of GPU memory on as few GPUs of a node as hold it; boots in 20 s plus 0.5 s per GB; a snapshot is
 *       1.1 x the weights. Popularity is Zipf (exponent 1.0) over request rates, each replica serving 4 req/s, at
 *       least one replica per model; the rates are scaled so the replicas wanted need about 40 % of the cluster's GPUs
 *       (a cluster with room to spare, where a bad placement still costs).
 *   <li>State: each node caches the weights of models in proportion to popularity (about 3 per node), fully or half;
 *       holds a snapshot of a fifth of those; and the previous plan (the startup-greedy placement of this cluster)
 *       runs, less a tenth of its replicas (failed or scaled in), so the solver has a warm start to move from.
 * </ul>
 */
public final class SyntheticCluster {
  static final double GB = 1e9;

  private SyntheticCluster() {}

  public static Cluster of(int nodeCount, int modelCount, long seed) {
    Random r = new Random(seed);
    int zones = Math.max(2, Math.min(8, nodeCount / 100 + 2));
    List<Model> models = new ArrayList<>();
    double[] popularity = new double[modelCount];
    for (int i = 0; i < modelCount; i++) {
      popularity[i] = 1.0 / (i + 1);
    }
    Traces.Zipf zipf = new Traces.Zipf(modelCount, 1.0);
    double[] weightsGb = new double[modelCount];
    for (int i = 0; i < modelCount; i++) {
      weightsGb[i] = Math.exp(r.nextDouble() * Math.log(70));
    }
    List<Node> nodes = new ArrayList<>();
    int capacity = 0;
    for (int i = 0; i < nodeCount; i++) {
      Node bare = node(i, zones, r);
      capacity += bare.gpuCount();
      Map<String, Double> cached = new HashMap<>();
      Set<String> snapshots = new HashSet<>();
      for (int k = 0; k < 3; k++) {
        String m = "model-" + zipf.sample(r);
        cached.put(m, r.nextBoolean() ? 1.0 : 0.5);
        if (r.nextInt(5) == 0) {
          snapshots.add(m);
        }
      }
      nodes.add(bare.with(bare.gpuCount(), cached, snapshots));
    }
    // the top model's rate such that the replicas wanted take ~40 % of the GPUs
    double top = 40;
    for (int round = 0; round < 40 && gpusWanted(top, popularity, weightsGb) < 0.4 * capacity; round++) {
      top *= 1.25;
    }
    for (int i = 0; i < modelCount; i++) {
      double rate = Math.max(0.5, top * popularity[i] / popularity[0]);
      models.add(sized("model-" + i, weightsGb[i], new Model.Demand(0, rate, 4)));
    }
    Cluster fresh = new Cluster(nodes, models);
    Plan previous = Baselines.startupGreedy(CostModel.DEFAULT).place(fresh);
    Map<String, Map<String, Integer>> running = new LinkedHashMap<>();
    previous.replicas().forEach((m, perNode) -> perNode.forEach((n, k) -> {
      int keep = 0;
      for (int j = 0; j < k; j++) {
        keep += r.nextInt(10) == 0 ? 0 : 1;
      }
      if (keep > 0) {
        running.computeIfAbsent(m, x -> new LinkedHashMap<>()).put(n, keep);
      }
    }));
    return new Cluster(nodes, models, running);
  }

  /**
   * {@code count} nodes of the kinds above over their zones, caches empty: the cluster of a simulation, which fills
   * them itself.
   */
  public static List<Node> nodes(int count, long seed) {
    Random r = new Random(seed);
    int zones = Math.max(2, Math.min(8, count / 100 + 2));
    List<Node> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      out.add(node(i, zones, r));
    }
    return out;
  }

  /**
   * {@code nodes} with the caches a running cluster serving {@code trace}'s mix would have: each node holds the weights
   * of three draws from the models it can run, weighted by their share of the trace's requests (yesterday's traffic
   * like today's), and a snapshot for its kind of each with even odds. The same for every policy.
   */
  public static List<Node> warm(List<Node> nodes, List<Model> models, Trace trace, long seed) {
    Map<String, Integer> requests = new HashMap<>();
    trace.requests().forEach(q -> requests.merge(q.model(), 1, Integer::sum));
    java.util.SplittableRandom r = new java.util.SplittableRandom(seed * 0x9E3779B97F4A7C15L + 17);
    List<Node> out = new ArrayList<>(nodes.size());
    for (Node n : nodes) {
      List<Model> fits = models.stream().filter(m -> m.runsOn(n) && requests.containsKey(m.id())).toList();
      long total = fits.stream().mapToLong(m -> requests.get(m.id())).sum();
      Map<String, Double> cached = new HashMap<>(n.cachedWeights());
      Set<String> snapshots = new HashSet<>(n.snapshots());
      long used = 0;
      for (int k = 0; k < 3 && total > 0; k++) {
        long pick = r.nextLong(total);
        Model chosen = fits.getLast();
        for (Model m : fits) {
          pick -= requests.get(m.id());
          if (pick < 0) {
            chosen = m;
            break;
          }
        }
        boolean snapshot = r.nextBoolean() && chosen.snapshotBytes().containsKey(n.gpuModel());
        long bytes = chosen.weightBytes() + (snapshot ? chosen.snapshotBytes().get(n.gpuModel()) : 0);
        if (cached.containsKey(chosen.id()) || used + bytes > n.cacheBytes()) {
          continue;
        }
        used += bytes;
        cached.put(chosen.id(), 1.0);
        if (snapshot) {
          snapshots.add(chosen.id());
        }
      }
      out.add(n.with(n.gpuCount(), cached, snapshots));
    }
    return out;
  }

  /** Node {@code i} of its kind (drawn from {@code r}) in its zone, its cache empty. */
  private static Node node(int i, int zones, Random r) {
    double kind = r.nextDouble();
    String gpu = kind < 0.3 ? "H100" : kind < 0.6 ? "A100" : "L4";
    return new Node("node-" + i, "zone-" + (i % zones), gpu, gpu.equals("L4") ? 4 : 8,
        gpu.equals("H100") ? 80L << 30 : gpu.equals("A100") ? 40L << 30 : 24L << 30, 2_000_000_000_000L,
        new Node.Bandwidth(2 * GB, 1.25 * GB, 0.2 * GB), Map.of(), Set.of());
  }

  /**
   * A model for an id, by the distribution above (weights log-uniform 1 to 70 GB, boot 20 s + 0.5 s per GB, snapshots
   * 1.1 x the weights), drawn from the id and {@code seed}: the same id, the same model. Demand is the simulator's.
   */
  public static Model model(String id, long seed) {
    // SplittableRandom mixes its seed: java.util.Random's first draws for nearby seeds (model-1, model-2) are nearly
    // equal, which made every model the same size
    java.util.SplittableRandom r = new java.util.SplittableRandom(seed * 0x9E3779B97F4A7C15L + id.hashCode());
    return sized(id, Math.exp(r.nextDouble() * Math.log(70)), Model.Demand.ofReplicas(0));
  }

  /** A model of {@code weightsGb} GB of weights: 1.2 x that of GPU memory, snapshots of 1.1 x, its boot time. */
  private static Model sized(String id, double weightsGb, Model.Demand demand) {
    return sized(id, weightsGb, 20 + 0.5 * weightsGb, 1.1 * weightsGb, 0, demand);
  }

  /**
   * A model of {@code weightsGb} GB of weights that boots in {@code bootSeconds} and snapshots to {@code snapshotGb}
   * on every kind of node; it needs 1.2 x its weights of GPU memory, over {@code gpus} GPUs (0: as few 80 GB ones
   * as hold that).
   */
  static Model sized(String id, double weightsGb, double bootSeconds, double snapshotGb, int gpus,
      Model.Demand demand) {
    long weights = (long) (weightsGb * GB);
    long memory = (long) (weights * 1.2);
    long snapshot = (long) (snapshotGb * GB);
    return new Model(id, weights, Map.of("H100", snapshot, "A100", snapshot, "L4", snapshot),
        gpus > 0 ? gpus : gpusFor(memory, 80L << 30, 8), memory, bootSeconds, Set.of(), demand);
  }

  private static double gpusWanted(double top, double[] popularity, double[] weightsGb) {
    double total = 0;
    for (int i = 0; i < popularity.length; i++) {
      double rate = Math.max(0.5, top * popularity[i] / popularity[0]);
      total += Math.ceil(rate / 4) * gpusFor((long) (weightsGb[i] * GB * 1.2), 80L << 30, 8);
    }
    return total;
  }

  /** The fewest GPUs of {@code perGpu} memory that hold {@code memory}, up to {@code max}. */
  private static int gpusFor(long memory, long perGpu, int max) {
    int g = 1;
    while (g < max && (long) g * perGpu < memory) {
      g *= 2;
    }
    return g;
  }
}
