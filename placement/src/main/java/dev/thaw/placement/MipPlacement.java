package dev.thaw.placement;

import com.google.ortools.Loader;
import com.google.ortools.linearsolver.MPConstraint;
import com.google.ortools.linearsolver.MPObjective;
import com.google.ortools.linearsolver.MPSolver;
import com.google.ortools.linearsolver.MPVariable;
import com.google.ortools.sat.CpModel;
import com.google.ortools.sat.CpSolver;
import com.google.ortools.sat.CpSolverStatus;
import com.google.ortools.sat.IntVar;
import com.google.ortools.sat.LinearExpr;
import com.google.ortools.sat.LinearExprBuilder;
import java.time.Duration;
import java.util.Map;

/**
 * Thaw's placement: the integer program of {@link Formulation} solved with OR-Tools, by CP-SAT, by SCIP, or as its LP
 * relaxation (GLOP) rounded down and completed by the greedy rule. Every search starts from
 * {@link Baselines#startupGreedy}'s plan (which keeps what runs): a hint, and the answer, with the reason in
 * {@link Plan#note()}, when the solver finds nothing within its time limit, fails, or finds only worse.
 */
public final class MipPlacement implements PlacementPolicy {
  private static final double SCALE = 1000; // CP-SAT's integer objective: milliseconds

  /**
   * Which OR-Tools solver. {@code AUTO}, the default: the LP relaxation rounded (fast at any size, and exact on most
   * instances measured), and on instances small enough for it to finish ({@value #EXACT_MAX_VARIABLES} variables or
   * fewer) SCIP too, keeping the cheaper plan; see docs/benchmarks.md for how each fares by size.
   */
  public enum Solver {
    AUTO, CP_SAT, SCIP, LP_ROUNDING
  }

  /**
   * Above this many node-model pairs that fit, {@link Solver#AUTO} and {@link Solver#LP_ROUNDING} offer each model
   * only its cheapest nodes ({@link Formulation#candidates}): the program shrinks from pairs to a few per replica.
   */
  public static final long PRUNE_ABOVE_PAIRS = 100_000;

  /** Up to this many variables, {@link Solver#AUTO} also runs SCIP (it proved optimality within 0.2 s at 100 x 50). */
  public static final int EXACT_MAX_VARIABLES = 20_000;

  /**
   * @param timeLimit the solver's wall-clock limit
   * @param workers search threads (CP-SAT)
   * @param seed the solver's random seed; with interleaved search (CP-SAT) the same inputs give the same plan
   */
  public record Options(Duration timeLimit, int workers, long seed, CostModel costs, Solver solver, boolean pruneLarge) {
    public static final Options DEFAULT = new Options(Duration.ofSeconds(2), 2, 42, CostModel.DEFAULT, Solver.AUTO, true);

    public Options(Duration timeLimit, int workers, long seed, CostModel costs) {
      this(timeLimit, workers, seed, costs, Solver.CP_SAT, true);
    }

    public Options(Duration timeLimit, int workers, long seed, CostModel costs, Solver solver) {
      this(timeLimit, workers, seed, costs, solver, true);
    }

    public Options withSolver(Solver s) {
      return new Options(timeLimit, workers, seed, costs, s, pruneLarge);
    }

    public Options withTimeLimit(Duration d) {
      return new Options(d, workers, seed, costs, solver, pruneLarge);
    }

    /** Without pruning: the whole program, whatever its size (for a bound to measure gaps against). */
    public Options unpruned() {
      return new Options(timeLimit, workers, seed, costs, solver, false);
    }
  }

  private final Options options;

  public MipPlacement(Options options) {
    this.options = options;
  }

  @Override
  public String name() {
    return "thaw";
  }

  /**
   * Loads the solvers' native libraries now rather than at the first {@link #place}: once per JVM, about half a CPU
   * second (OR-Tools unpacks them from its jar), which a cluster member pays as it starts instead of during the
   * first model fetch it plans for.
   *
   * @throws UnsatisfiedLinkError when OR-Tools has no native library for this platform
   */
  public static void loadSolvers() {
    Natives.load();
  }

  private static final class Natives {
    static {
      Loader.loadNativeLibraries();
    }

    static void load() {
      // the static initialiser has run: OR-Tools' natives are loaded once per JVM
    }
  }

  /** What a solver returned: the replicas (null when it has none), its proven bound, and what happened. */
  private record Outcome(Map<String, Map<String, Integer>> replicas, double bound, String status) {}

  @Override
  public Plan place(Cluster c) {
    long t0 = System.nanoTime();
    GreedyPlacer greedyRule = (GreedyPlacer) Baselines.startupGreedy(options.costs());
    Plan greedy = greedyRule.place(c);
    Natives.load();
    double relaxed = Plans.lowerBound(c, options.costs());
    greedy = new Plan(greedy.policy(), greedy.replicas(), greedy.cost(), Math.min(greedy.cost(), relaxed),
        greedy.solveTime(), greedy.note());
    boolean prune = options.pruneLarge() && (options.solver() == Solver.AUTO || options.solver() == Solver.LP_ROUNDING)
        && compatiblePairs(c) > PRUNE_ABOVE_PAIRS;
    Formulation f = Formulation.of(c, options.costs(), prune, greedy);
    if (options.solver() == Solver.AUTO) {
      Plan lp = finish(c, greedy, greedyRule, f, mip(f, greedy, "GLOP", false), Solver.LP_ROUNDING, t0);
      if (f.vars.size() > EXACT_MAX_VARIABLES) {
        return lp;
      }
      Plan scip = finish(c, lp, greedyRule, f, mip(f, lp, "SCIP", true), Solver.SCIP, t0);
      Plan best = scip.cost() <= lp.cost() ? scip : lp;
      return new Plan(name(), best.replicas(), best.cost(), Math.max(lp.bound(), scip.bound()),
          Duration.ofNanos(System.nanoTime() - t0), best.note());
    }
    Outcome o = switch (options.solver()) {
      case CP_SAT -> cpSat(f, greedy);
      case SCIP -> mip(f, greedy, "SCIP", true);
      case LP_ROUNDING, AUTO -> mip(f, greedy, "GLOP", false);
    };
    return finish(c, greedy, greedyRule, f, o, options.solver(), t0);
  }

  /** The solver's plan priced, or {@code fallback} (with the reason) when it has none or a worse one. */
  private Plan finish(Cluster c, Plan fallback, GreedyPlacer greedyRule, Formulation f, Outcome o, Solver solver,
      long t0) {
    CostModel costs = options.costs();
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    if (o.replicas() == null) {
      return new Plan(name(), fallback.replicas(), fallback.cost(), fallback.bound(), took,
          o.status() + "; " + describe(fallback) + " is used");
    }
    Map<String, Map<String, Integer>> replicas = o.replicas();
    if (solver == Solver.LP_ROUNDING) {
      replicas = greedyRule.place(c, replicas).replicas(); // complete the rounded-down replicas greedily
    }
    double cost = Plans.cost(c, new Plan(name(), replicas, 0, 0, took, ""), costs);
    double bound = Math.max(fallback.bound(), o.bound());
    if (cost > fallback.cost()) {
      return new Plan(name(), fallback.replicas(), fallback.cost(), Math.min(fallback.cost(), bound), took,
          o.status() + "; " + describe(fallback) + " was better and is used");
    }
    return new Plan(name(), replicas, cost, Math.min(cost, bound), took, o.status());
  }

  private static long compatiblePairs(Cluster c) {
    long k = 0;
    for (Model m : c.models()) {
      for (Node n : c.nodes()) {
        if (m.runsOn(n)) {
          k++;
        }
      }
    }
    return k;
  }

  private static String describe(Plan p) {
    return p.note().isEmpty() ? "the " + p.policy() + " plan" : "the plan found before (" + p.note() + ")";
  }

  private Outcome cpSat(Formulation f, Plan hint) {
    CpModel model = new CpModel();
    IntVar[] v = new IntVar[f.vars.size()];
    LinearExprBuilder objective = LinearExpr.newBuilder();
    for (int i = 0; i < v.length; i++) {
      Formulation.Var var = f.vars.get(i);
      v[i] = model.newIntVar(0, var.ub(), var.name());
      objective.addTerm(v[i], Math.round(var.cost() * SCALE));
    }
    for (Formulation.Row r : f.rows) {
      LinearExprBuilder e = LinearExpr.newBuilder();
      for (int k = 0; k < r.vars().length; k++) {
        e.addTerm(v[r.vars()[k]], r.coefs()[k]);
      }
      model.addLinearConstraint(e.build(), r.lb() == Long.MIN_VALUE ? Long.MIN_VALUE + 1 : r.lb(),
          r.ub() == Long.MAX_VALUE ? Long.MAX_VALUE - 1 : r.ub());
    }
    model.minimize(objective.build());
    long[] h = f.values(hint);
    for (int i = 0; i < v.length; i++) {
      model.addHint(v[i], h[i]);
    }
    CpSolver solver = new CpSolver();
    solver.getParameters()
        .setMaxTimeInSeconds(options.timeLimit().toNanos() / 1e9)
        .setNumWorkers(Math.max(1, options.workers()))
        .setInterleaveSearch(true)
        .setRandomSeed((int) options.seed());
    CpSolverStatus status = solver.solve(model);
    if (status != CpSolverStatus.OPTIMAL && status != CpSolverStatus.FEASIBLE) {
      return new Outcome(null, 0, status == CpSolverStatus.UNKNOWN
          ? "CP-SAT found no plan within its time limit of " + options.timeLimit().toMillis() + " ms"
          : "CP-SAT ended with status " + status);
    }
    return new Outcome(f.replicas(i -> solver.value(v[i])), solver.bestObjectiveBound() / SCALE + f.constant,
        status == CpSolverStatus.OPTIMAL ? "optimal (CP-SAT)" : "time limit (CP-SAT)");
  }

  private Outcome mip(Formulation f, Plan hint, String backend, boolean integer) {
    MPSolver solver = MPSolver.createSolver(backend);
    if (solver == null) {
      return new Outcome(null, 0, "OR-Tools has no " + backend + " solver here");
    }
    try {
      solver.setTimeLimit(Math.max(1, options.timeLimit().toMillis()));
      MPVariable[] v = new MPVariable[f.vars.size()];
      MPObjective objective = solver.objective();
      for (int i = 0; i < v.length; i++) {
        Formulation.Var var = f.vars.get(i);
        v[i] = integer ? solver.makeIntVar(0, var.ub(), var.name()) : solver.makeNumVar(0, var.ub(), var.name());
        objective.setCoefficient(v[i], var.cost());
      }
      for (Formulation.Row r : f.rows) {
        MPConstraint ct = solver.makeConstraint(r.lb() == Long.MIN_VALUE ? Double.NEGATIVE_INFINITY : r.lb(),
            r.ub() == Long.MAX_VALUE ? Double.POSITIVE_INFINITY : r.ub());
        for (int k = 0; k < r.vars().length; k++) {
          ct.setCoefficient(v[r.vars()[k]], r.coefs()[k]);
        }
      }
      objective.setOffset(f.constant);
      objective.setMinimization();
      if (integer) {
        long[] h = f.values(hint);
        double[] hd = new double[h.length];
        for (int i = 0; i < h.length; i++) {
          hd[i] = h[i];
        }
        solver.setHint(v, hd);
      }
      MPSolver.ResultStatus status = solver.solve();
      if (status != MPSolver.ResultStatus.OPTIMAL && status != MPSolver.ResultStatus.FEASIBLE) {
        return new Outcome(null, 0, backend + " ended with status " + status + " (time limit "
            + options.timeLimit().toMillis() + " ms)");
      }
      // the LP's optimum bounds the integer program's from below, as a MIP solver's best bound does
      double bound = integer ? objective.bestBound() : objective.value();
      if (f.pruned) {
        bound = 0; // the optimum of a program restricted to candidate nodes bounds nothing of the whole
      }
      String what = (status == MPSolver.ResultStatus.OPTIMAL ? "optimal" : "time limit") + " (" + backend
          + (integer ? "" : ", LP relaxation rounded down and completed greedily")
          + (f.pruned ? ", each model on its cheapest candidate nodes" : "") + ")";
      return new Outcome(f.replicas(i -> v[i].solutionValue()), bound, what);
    } finally {
      solver.delete();
    }
  }
}
