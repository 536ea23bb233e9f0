package dev.thaw.placement;

import com.google.ortools.Loader;
import com.google.ortools.sat.CpModel;
import com.google.ortools.sat.CpSolver;
import com.google.ortools.sat.CpSolverStatus;
import com.google.ortools.sat.IntVar;
import com.google.ortools.sat.LinearExpr;
import com.google.ortools.sat.LinearExprBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Thaw's placement: an integer program solved with OR-Tools' CP-SAT.
 *
 * <p>Variables: {@code x[m][n]}, replicas of model m on node n, for the pairs where m runs on n; with {@code r[m][n]}
 * running now, {@code new[m][n] >= x - r} and {@code removed[m][n] >= r - x}; {@code unplaced[m]}. Minimise
 * {@code sum w_m * start(m, n) * new + movePenalty * removed + unplacedCost * w_m * unplaced} (the {@link CostModel},
 * in milliseconds so CP-SAT's integer objective loses nothing that matters) subject to: per node, the GPUs of its
 * replicas at most its GPU count; per model, {@code sum_n x + unplaced = wanted}; per model and zone, at most
 * {@link Plans#zoneCap} replicas. GPU model and memory compatibility is in which pairs get a variable.
 *
 * <p>The search starts from {@link Baselines#startupGreedy}'s plan (which keeps what runs): a hint, and the answer
 * when CP-SAT finds nothing better within the time limit or fails, with the reason in {@link Plan#note()}.
 */
public final class MipPlacement implements PlacementPolicy {
  private static final double SCALE = 1000; // objective in milliseconds

  /**
   * @param timeLimit the solver's wall-clock limit
   * @param workers CP-SAT's search workers
   * @param seed CP-SAT's random seed; with {@code workers} fixed and interleaved search, the same inputs give the same
   *     plan
   */
  public record Options(Duration timeLimit, int workers, long seed, CostModel costs) {
    public static final Options DEFAULT = new Options(Duration.ofSeconds(2), 4, 42, CostModel.DEFAULT);
  }

  private final Options options;

  public MipPlacement(Options options) {
    this.options = options;
  }

  @Override
  public String name() {
    return "thaw";
  }

  private static final class NativesHolder {
    static {
      Loader.loadNativeLibraries();
    }

    static void load() {
      // the static initialiser ran: OR-Tools' natives are loaded once per JVM
    }
  }

  private record Pair(Model m, Node n, IntVar x) {}

  @Override
  public Plan place(Cluster c) {
    long t0 = System.nanoTime();
    Plan greedy = Baselines.startupGreedy(options.costs()).place(c);
    NativesHolder.load();
    StartCost start = new StartCost(c);
    CostModel costs = options.costs();
    CpModel model = new CpModel();
    LinearExprBuilder objective = LinearExpr.newBuilder();
    List<Pair> pairs = new ArrayList<>();
    Map<String, LinearExprBuilder> gpusPerNode = new HashMap<>();
    long constant = 0;
    for (Model m : c.models()) {
      int wanted = m.demand().replicasWanted();
      double w = m.demand().weight();
      int cap = Plans.zoneCap(c, m);
      LinearExprBuilder placed = LinearExpr.newBuilder();
      Map<String, LinearExprBuilder> perZone = new LinkedHashMap<>();
      for (Node n : c.nodes()) {
        int running = c.running(m.id(), n.id());
        if (!m.runsOn(n)) {
          constant += Math.round(costs.movePenaltySeconds() * SCALE) * running; // it must go
          continue;
        }
        int ub = Math.min(wanted, n.gpuCount() / m.gpusPerReplica());
        if (ub <= 0 && running == 0) {
          continue;
        }
        IntVar x = model.newIntVar(0, Math.max(0, ub), m.id() + "@" + n.id());
        pairs.add(new Pair(m, n, x));
        placed.add(x);
        perZone.computeIfAbsent(n.zone(), z -> LinearExpr.newBuilder()).add(x);
        gpusPerNode.computeIfAbsent(n.id(), k -> LinearExpr.newBuilder()).addTerm(x, m.gpusPerReplica());
        long startCost = Math.round(w * start.seconds(m, n) * SCALE);
        if (running == 0) {
          objective.addTerm(x, startCost);
        } else {
          IntVar added = model.newIntVar(0, Math.max(0, ub), "new:" + m.id() + "@" + n.id());
          IntVar removed = model.newIntVar(0, running, "removed:" + m.id() + "@" + n.id());
          model.addGreaterOrEqual(LinearExpr.newBuilder().add(added).addTerm(x, -1).build(), -running);
          model.addGreaterOrEqual(LinearExpr.newBuilder().add(removed).add(x).build(), running);
          objective.addTerm(added, startCost);
          objective.addTerm(removed, Math.round(costs.movePenaltySeconds() * SCALE));
        }
      }
      IntVar unplaced = model.newIntVar(0, wanted, "unplaced:" + m.id());
      placed.add(unplaced);
      model.addEquality(placed.build(), wanted);
      objective.addTerm(unplaced, Math.round(costs.unplacedSeconds() * w * SCALE));
      for (LinearExprBuilder z : perZone.values()) {
        model.addLessOrEqual(z.build(), cap);
      }
    }
    for (Node n : c.nodes()) {
      LinearExprBuilder used = gpusPerNode.get(n.id());
      if (used != null) {
        model.addLessOrEqual(used.build(), n.gpuCount());
      }
    }
    objective.add(constant);
    model.minimize(objective.build());
    for (Pair p : pairs) {
      model.addHint(p.x(), greedy.count(p.m().id(), p.n().id()));
    }

    CpSolver solver = new CpSolver();
    solver.getParameters()
        .setMaxTimeInSeconds(options.timeLimit().toNanos() / 1e9)
        .setNumWorkers(Math.max(1, options.workers()))
        .setInterleaveSearch(true)
        .setRandomSeed((int) options.seed());
    CpSolverStatus status = solver.solve(model);
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    if (status != CpSolverStatus.OPTIMAL && status != CpSolverStatus.FEASIBLE) {
      String why = status == CpSolverStatus.UNKNOWN
          ? "CP-SAT found no plan within its time limit of " + options.timeLimit().toMillis() + " ms"
          : "CP-SAT ended with status " + status;
      return new Plan(name(), greedy.replicas(), greedy.cost(), 0, took, why + "; the startup_greedy plan is used");
    }
    Map<String, Map<String, Integer>> replicas = Plan.mutable();
    for (Pair p : pairs) {
      int k = (int) solver.value(p.x());
      if (k > 0) {
        replicas.computeIfAbsent(p.m().id(), id -> new LinkedHashMap<>()).put(p.n().id(), k);
      }
    }
    Plan unpriced = new Plan(name(), replicas, 0, 0, took, "");
    double cost = Plans.cost(c, unpriced, costs);
    if (cost > greedy.cost()) {
      // the rounding of costs to milliseconds can only matter by a hair; never return worse than the hint
      return new Plan(name(), greedy.replicas(), greedy.cost(), 0, took, "the startup_greedy plan was better");
    }
    double bound = Math.min(cost, solver.bestObjectiveBound() / SCALE);
    return new Plan(name(), replicas, cost, bound, took, status == CpSolverStatus.OPTIMAL ? "optimal" : "time limit");
  }
}
