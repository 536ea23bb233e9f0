package dev.thaw.placement;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The integer program of a placement, apart from any solver: variables with an upper bound (all start at 0) and a
 * cost in demand-weighted seconds, and rows {@code lb <= sum coef * var <= ub}.
 *
 * <p>{@code x[m][n]}, replicas of model m on node n, exist for the pairs where m runs on n; with {@code r} running
 * there now, {@code new >= x - r} and {@code removed >= r - x} carry the start cost and the move penalty; per model
 * {@code sum_n x + unplaced = wanted}; per node the replicas' GPUs at most its GPU count; per model and zone at most
 * {@link Plans#zoneCap} replicas. Replicas running where their model can no longer run are a constant.
 */
final class Formulation {
  record Var(String name, int ub, double cost) {}

  record Row(int[] vars, int[] coefs, long lb, long ub) {}

  /** A replica-count variable: its model, its node, and the replicas running there now. */
  record Pair(Model m, Node n, int x, int running, int added, int removed) {}

  final List<Var> vars = new ArrayList<>();
  final List<Row> rows = new ArrayList<>();
  final List<Pair> pairs = new ArrayList<>();
  final Map<String, Integer> unplaced = new LinkedHashMap<>();
  double constant;

  private int var(String name, int ub, double cost) {
    vars.add(new Var(name, ub, cost));
    return vars.size() - 1;
  }

  private void row(List<Integer> v, List<Integer> coefs, long lb, long ub) {
    rows.add(new Row(v.stream().mapToInt(Integer::intValue).toArray(), coefs.stream().mapToInt(Integer::intValue).toArray(),
        lb, ub));
  }

  static Formulation of(Cluster c, CostModel costs) {
    return of(c, costs, false, null);
  }

  /**
   * @param pruned give each model variables only on its {@link #candidates} cheapest nodes to start on, the nodes it
   *     runs on, and those {@code keep} puts it on: a much smaller program whose optimum is a feasible plan of the
   *     whole one (no longer a bound of it)
   */
  static Formulation of(Cluster c, CostModel costs, boolean pruned, Plan keep) {
    Formulation f = new Formulation();
    f.pruned = pruned;
    StartCost start = new StartCost(c);
    Map<String, List<Integer>> gpuVars = new HashMap<>();
    Map<String, List<Integer>> gpuCoefs = new HashMap<>();
    for (Model m : c.models()) {
      int wanted = m.demand().replicasWanted();
      double w = m.demand().weight();
      List<Integer> placed = new ArrayList<>();
      Map<String, List<Integer>> perZone = new LinkedHashMap<>();
      java.util.Set<String> allowed = pruned ? candidates(c, m, start, keep) : null;
      for (Node n : c.nodes()) {
        int running = c.running(m.id(), n.id());
        if (!m.runsOn(n)) {
          f.constant += costs.movePenaltySeconds() * running; // it must go
          continue;
        }
        if (allowed != null && !allowed.contains(n.id())) {
          continue;
        }
        int ub = Math.min(wanted, n.gpuCount() / m.gpusPerReplica());
        if (ub <= 0 && running == 0) {
          continue;
        }
        ub = Math.max(0, ub);
        double startCost = w * start.seconds(m, n);
        int x;
        int added = -1;
        int removed = -1;
        if (running == 0) {
          x = f.var(m.id() + "@" + n.id(), ub, startCost);
        } else {
          x = f.var(m.id() + "@" + n.id(), ub, 0);
          added = f.var("new:" + m.id() + "@" + n.id(), ub, startCost);
          removed = f.var("removed:" + m.id() + "@" + n.id(), running, costs.movePenaltySeconds());
          f.row(List.of(added, x), List.of(1, -1), -running, Long.MAX_VALUE);
          f.row(List.of(removed, x), List.of(1, 1), running, Long.MAX_VALUE);
        }
        f.pairs.add(new Pair(m, n, x, running, added, removed));
        placed.add(x);
        perZone.computeIfAbsent(n.zone(), z -> new ArrayList<>()).add(x);
        gpuVars.computeIfAbsent(n.id(), k -> new ArrayList<>()).add(x);
        gpuCoefs.computeIfAbsent(n.id(), k -> new ArrayList<>()).add(m.gpusPerReplica());
      }
      int u = f.var("unplaced:" + m.id(), wanted, costs.unplacedSeconds() * w);
      f.unplaced.put(m.id(), u);
      placed.add(u);
      f.row(placed, ones(placed.size()), wanted, wanted);
      int cap = Plans.zoneCap(c, m);
      for (List<Integer> z : perZone.values()) {
        f.row(z, ones(z.size()), Long.MIN_VALUE, cap);
      }
    }
    for (Node n : c.nodes()) {
      if (gpuVars.containsKey(n.id())) {
        f.row(gpuVars.get(n.id()), gpuCoefs.get(n.id()), Long.MIN_VALUE, n.gpuCount());
      }
    }
    return f;
  }

  boolean pruned;

  /** How many of the cheapest nodes a pruned program offers a model: room for every replica several times over. */
  static int candidates(Model m) {
    return 4 * m.demand().replicasWanted() + 16;
  }

  private static java.util.Set<String> candidates(Cluster c, Model m, StartCost start, Plan keep) {
    List<Node> fit = new ArrayList<>();
    java.util.Set<String> out = new java.util.HashSet<>();
    for (Node n : c.nodes()) {
      if (m.runsOn(n)) {
        fit.add(n);
        if (c.running(m.id(), n.id()) > 0 || (keep != null && keep.count(m.id(), n.id()) > 0)) {
          out.add(n.id());
        }
      }
    }
    fit.sort(java.util.Comparator.comparingDouble((Node n) -> start.seconds(m, n)).thenComparing(Node::id));
    for (int i = 0; i < Math.min(fit.size(), candidates(m)); i++) {
      out.add(fit.get(i).id());
    }
    return out;
  }

  private static List<Integer> ones(int k) {
    return java.util.Collections.nCopies(k, 1);
  }

  /** Values of every variable that put {@code plan}'s replicas in place (a hint for a solver). */
  long[] values(Plan plan) {
    long[] v = new long[vars.size()];
    Map<String, Integer> placed = new HashMap<>();
    for (Pair p : pairs) {
      int k = plan.count(p.m().id(), p.n().id());
      v[p.x()] = k;
      if (p.added() >= 0) {
        v[p.added()] = Math.max(0, k - p.running());
        v[p.removed()] = Math.max(0, p.running() - k);
      }
      placed.merge(p.m().id(), k, Integer::sum);
    }
    for (var e : unplaced.entrySet()) {
      int wanted = vars.get(e.getValue()).ub(); // an unplaced variable is bounded by the replicas its model wants
      v[e.getValue()] = Math.max(0, wanted - placed.getOrDefault(e.getKey(), 0));
    }
    return v;
  }

  /** The replicas that the values of the {@code x} variables give, each rounded down. */
  Map<String, Map<String, Integer>> replicas(java.util.function.IntToDoubleFunction value) {
    Map<String, Map<String, Integer>> out = new LinkedHashMap<>();
    for (Pair p : pairs) {
      int k = (int) Math.floor(value.applyAsDouble(p.x()) + 1e-6);
      if (k > 0) {
        out.computeIfAbsent(p.m().id(), id -> new LinkedHashMap<>()).put(p.n().id(), k);
      }
    }
    return out;
  }
}
