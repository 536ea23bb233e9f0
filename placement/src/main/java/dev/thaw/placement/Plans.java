package dev.thaw.placement;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** What every plan must respect, and what it costs. */
public final class Plans {
  private Plans() {}

  /**
   * The constraints {@code plan} breaks, each named; empty when it is valid: replicas only where the model runs (GPU
   * model, count and memory), no node's GPUs over-committed, no model over the replicas it wants, a model's replicas
   * spread over zones ({@link #zoneCap}).
   */
  public static List<String> violations(Cluster c, Plan plan) {
    List<String> out = new ArrayList<>();
    Map<String, Node> nodes = new HashMap<>();
    c.nodes().forEach(n -> nodes.put(n.id(), n));
    Map<String, Model> models = new HashMap<>();
    c.models().forEach(m -> models.put(m.id(), m));
    Map<String, Integer> gpus = new HashMap<>();
    for (var e : plan.replicas().entrySet()) {
      Model m = models.get(e.getKey());
      if (m == null) {
        out.add("replicas of an unknown model " + e.getKey());
        continue;
      }
      Map<String, Integer> perZone = new HashMap<>();
      for (var p : e.getValue().entrySet()) {
        Node n = nodes.get(p.getKey());
        if (n == null) {
          out.add(m.id() + " on an unknown node " + p.getKey());
          continue;
        }
        if (!m.runsOn(n)) {
          out.add(m.id() + " cannot run on " + n.id() + " (" + n.gpuModel() + ")");
        }
        gpus.merge(n.id(), p.getValue() * m.gpusPerReplica(), Integer::sum);
        perZone.merge(n.zone(), p.getValue(), Integer::sum);
      }
      int wanted = m.demand().replicasWanted();
      if (plan.total(m.id()) > wanted) {
        out.add(m.id() + " has " + plan.total(m.id()) + " replicas, wants " + wanted);
      }
      int cap = zoneCap(c, m);
      perZone.forEach((z, k) -> {
        if (k > cap) {
          out.add(m.id() + " has " + k + " replicas in zone " + z + ", at most " + cap + " allowed");
        }
      });
    }
    gpus.forEach((n, used) -> {
      if (used > nodes.get(n).gpuCount()) {
        out.add(n + " has " + used + " GPUs committed of " + nodes.get(n).gpuCount());
      }
    });
    return out;
  }

  /**
   * At most this many replicas of {@code m} in one zone: its replicas spread over as many zones as it can use (zones
   * with a node it runs on), i.e. ceil(wanted / min(wanted, usable zones)).
   */
  public static int zoneCap(Cluster c, Model m) {
    int wanted = m.demand().replicasWanted();
    Set<String> zones = new HashSet<>();
    for (Node n : c.nodes()) {
      if (m.runsOn(n)) {
        zones.add(n.zone());
      }
    }
    int spread = Math.max(1, Math.min(wanted, zones.size()));
    return Math.max(1, (wanted + spread - 1) / spread);
  }

  /**
   * A lower bound on the cost of every valid plan, from a relaxation that ignores GPU capacity and zones: each model
   * keeps what runs where it may (free), removes what it must, and starts the rest on its cheapest nodes.
   */
  public static double lowerBound(Cluster c, CostModel costs) {
    StartCost start = new StartCost(c);
    double total = 0;
    for (Model m : c.models()) {
      int wanted = m.demand().replicasWanted();
      double w = m.demand().weight();
      int runningHere = 0;
      List<double[]> options = new ArrayList<>(); // start cost, how many fit
      for (Node n : c.nodes()) {
        int r = c.running(m.id(), n.id());
        if (!m.runsOn(n)) {
          total += costs.movePenaltySeconds() * r;
          continue;
        }
        runningHere += r;
        int fit = n.gpuCount() / m.gpusPerReplica();
        if (fit > 0) {
          options.add(new double[] {start.seconds(m, n), fit});
        }
      }
      int kept = Math.min(wanted, runningHere);
      total += costs.movePenaltySeconds() * (runningHere - kept);
      int needed = wanted - kept;
      options.sort(java.util.Comparator.comparingDouble(o -> o[0]));
      for (double[] o : options) {
        if (needed <= 0) {
          break;
        }
        int k = (int) Math.min(needed, o[1]);
        total += w * o[0] * k;
        needed -= k;
      }
      total += costs.unplacedSeconds() * w * Math.max(0, needed);
    }
    return total;
  }

  /** The plan's cost under {@code costs} (see {@link CostModel}), in demand-weighted seconds. */
  public static double cost(Cluster c, Plan plan, CostModel costs) {
    StartCost start = new StartCost(c);
    Map<String, Integer> position = new HashMap<>();
    for (Node n : c.nodes()) {
      position.put(n.id(), position.size());
    }
    double total = 0;
    for (Model m : c.models()) {
      double w = m.demand().weight();
      // only the nodes where the plan or what runs has replicas of m, in the cluster's order (the same sum)
      Set<String> where = new HashSet<>(plan.replicas().getOrDefault(m.id(), Map.of()).keySet());
      where.addAll(c.running().getOrDefault(m.id(), Map.of()).keySet());
      List<Node> touched = where.stream().filter(position::containsKey)
          .sorted(java.util.Comparator.comparingInt(position::get)).map(id -> c.nodes().get(position.get(id))).toList();
      for (Node n : touched) {
        int x = plan.count(m.id(), n.id());
        int r = c.running(m.id(), n.id());
        if (x > r) {
          total += w * start.seconds(m, n) * (x - r);
        } else if (r > x) {
          total += costs.movePenaltySeconds() * (r - x);
        }
      }
      int missing = Math.max(0, m.demand().replicasWanted() - plan.total(m.id()));
      total += costs.unplacedSeconds() * w * missing;
    }
    return total;
  }
}
