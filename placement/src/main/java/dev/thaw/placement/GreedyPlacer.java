package dev.thaw.placement;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The mechanics every rule-based policy shares: replicas already running stay (as many as their model still wants,
 * where it can still run, within GPUs and zone caps), then models in order of demand (heaviest first) get their
 * missing replicas one at a time on the node the rule picks among those that fit. Only the rule differs.
 */
final class GreedyPlacer implements PlacementPolicy {
  /** Picks one of {@code fitting} (never empty) for a new replica of {@code m}. */
  interface Rule {
    Node pick(Model m, List<Node> fitting, Usage usage);
  }

  /** GPUs in use per node while a plan is being built, and the start costs of the cluster. */
  static final class Usage {
    private final StartCost start;
    // by identity: the cluster's own node objects, looked up millions of times at 5000 nodes
    private final Map<Node, Integer> nodeIndex = new java.util.IdentityHashMap<>();
    private final int[] usedGpus;
    private final Map<String, double[]> seconds = new HashMap<>();
    final Cluster cluster;

    Usage(Cluster cluster) {
      this.cluster = cluster;
      this.start = new StartCost(cluster);
      for (Node n : cluster.nodes()) {
        nodeIndex.put(n, nodeIndex.size());
      }
      usedGpus = new int[nodeIndex.size()];
    }

    private int index(Node n) {
      Integer i = nodeIndex.get(n);
      if (i == null) {
        throw new IllegalArgumentException("node " + n.id() + " is not one of the cluster's");
      }
      return i;
    }

    /** A replica's start cost there, computed once per plan: placing replicas does not change what nodes hold. */
    double seconds(Model m, Node n) {
      double[] row = seconds.computeIfAbsent(m.id(), k -> {
        double[] r = new double[nodeIndex.size()];
        java.util.Arrays.fill(r, Double.NaN);
        return r;
      });
      int i = index(n);
      if (Double.isNaN(row[i])) {
        row[i] = start.seconds(m, n);
      }
      return row[i];
    }

    int used(Node n) {
      return usedGpus[index(n)];
    }

    int free(Node n) {
      return n.gpuCount() - used(n);
    }

    /** Fraction of the node's GPUs in use. */
    double load(Node n) {
      return n.gpuCount() == 0 ? 1 : used(n) / (double) n.gpuCount();
    }

    void take(Node n, int gpus) {
      usedGpus[index(n)] += gpus;
    }
  }

  private final String name;
  private final Rule rule;
  private final CostModel costs;

  GreedyPlacer(String name, Rule rule, CostModel costs) {
    this.name = name;
    this.rule = rule;
    this.costs = costs;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public Plan place(Cluster c) {
    return place(c, c.running());
  }

  /**
   * As {@link #place(Cluster)}, keeping {@code first} (model to node to count) where the running replicas would be
   * kept: how a rounded-down LP solution is completed.
   */
  Plan place(Cluster c, Map<String, Map<String, Integer>> first) {
    long t0 = System.nanoTime();
    Usage usage = new Usage(c);
    Map<String, Map<String, Integer>> plan = new LinkedHashMap<>();
    Map<String, Map<String, Integer>> perZone = new HashMap<>();
    List<Model> order = new ArrayList<>(c.models());
    order.sort(Comparator.comparingDouble((Model m) -> -m.demand().weight()).thenComparing(Model::id));
    Map<String, Integer> caps = new HashMap<>();
    for (Model m : order) {
      caps.put(m.id(), Plans.zoneCap(c, m));
    }
    // what runs stays, as far as it still may
    for (Model m : order) {
      int wanted = m.demand().replicasWanted();
      Map<String, Integer> runs = first.getOrDefault(m.id(), Map.of());
      if (runs.isEmpty()) {
        continue;
      }
      for (Node n : c.nodes()) {
        Integer there = runs.get(n.id());
        if (there == null) {
          continue;
        }
        int keep = Math.min(there, wanted - total(plan, m));
        while (keep > 0 && m.runsOn(n) && usage.free(n) >= m.gpusPerReplica()
            && perZone.getOrDefault(m.id(), Map.of()).getOrDefault(n.zone(), 0) < caps.get(m.id())) {
          add(plan, perZone, usage, m, n);
          keep--;
        }
      }
    }
    // then the missing replicas, heaviest models first
    for (Model m : order) {
      int cap = caps.get(m.id());
      Map<String, Integer> zones = perZone.computeIfAbsent(m.id(), k -> new HashMap<>());
      List<Node> runsOn = c.nodes().stream().filter(m::runsOn).toList();
      while (total(plan, m) < m.demand().replicasWanted()) {
        List<Node> fitting = new ArrayList<>();
        for (Node n : runsOn) {
          if (usage.free(n) >= m.gpusPerReplica() && zones.getOrDefault(n.zone(), 0) < cap) {
            fitting.add(n);
          }
        }
        if (fitting.isEmpty()) {
          break; // the rest stays unplaced, and costs so
        }
        add(plan, perZone, usage, m, rule.pick(m, fitting, usage));
      }
    }
    Plan unpriced = new Plan(name, plan, 0, 0, Duration.ZERO, "");
    return new Plan(name, plan, Plans.cost(c, unpriced, costs), 0, Duration.ofNanos(System.nanoTime() - t0), "");
  }

  private static int total(Map<String, Map<String, Integer>> plan, Model m) {
    return plan.getOrDefault(m.id(), Map.of()).values().stream().mapToInt(Integer::intValue).sum();
  }

  private static void add(Map<String, Map<String, Integer>> plan, Map<String, Map<String, Integer>> perZone, Usage usage,
      Model m, Node n) {
    plan.computeIfAbsent(m.id(), k -> new LinkedHashMap<>()).merge(n.id(), 1, Integer::sum);
    perZone.computeIfAbsent(m.id(), k -> new HashMap<>()).merge(n.zone(), 1, Integer::sum);
    usage.take(n, m.gpusPerReplica());
  }
}
