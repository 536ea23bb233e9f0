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

  /** Which OR-Tools solver. */
  public enum Solver {
    CP_SAT, SCIP, LP_ROUNDING
  }

  /**
   * @param timeLimit the solver's wall-clock limit
   * @param workers search threads (CP-SAT)
   * @param seed the solver's random seed; with interleaved search (CP-SAT) the same inputs give the same plan
   */
  public record Options(Duration timeLimit, int workers, long seed, CostModel costs, Solver solver) {
    public static final Options DEFAULT = new Options(Duration.ofSeconds(2), 4, 42, CostModel.DEFAULT, Solver.CP_SAT);

    public Options(Duration timeLimit, int workers, long seed, CostModel costs) {
      this(timeLimit, workers, seed, costs, Solver.CP_SAT);
    }

    public Options withSolver(Solver s) {
      return new Options(timeLimit, workers, seed, costs, s);
    }

    public Options withTimeLimit(Duration d) {
      return new Options(d, workers, seed, costs, solver);
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
    CostModel costs = options.costs();
    GreedyPlacer greedyRule = (GreedyPlacer) Baselines.startupGreedy(costs);
    Plan greedy = greedyRule.place(c);
    Natives.load();
    Formulation f = Formulation.of(c, costs);
    Outcome o = switch (options.solver()) {
      case CP_SAT -> cpSat(f, greedy);
      case SCIP -> mip(f, greedy, "SCIP", true);
      case LP_ROUNDING -> mip(f, greedy, "GLOP", false);
    };
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    if (o.replicas() == null) {
      return new Plan(name(), greedy.replicas(), greedy.cost(), 0, took, o.status() + "; the startup_greedy plan is used");
    }
    Map<String, Map<String, Integer>> replicas = o.replicas();
    if (options.solver() == Solver.LP_ROUNDING) {
      replicas = greedyRule.place(c, replicas).replicas(); // complete the rounded-down replicas greedily
    }
    double cost = Plans.cost(c, new Plan(name(), replicas, 0, 0, took, ""), costs);
    if (cost > greedy.cost()) {
      return new Plan(name(), greedy.replicas(), greedy.cost(), Math.min(greedy.cost(), o.bound()), took,
          o.status() + "; the startup_greedy plan was better and is used");
    }
    return new Plan(name(), replicas, cost, Math.min(cost, o.bound()), took, o.status());
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
      String what = (status == MPSolver.ResultStatus.OPTIMAL ? "optimal" : "time limit") + " (" + backend
          + (integer ? ")" : ", LP relaxation rounded down and completed greedily)");
      return new Outcome(f.replicas(i -> v[i].solutionValue()), bound, what);
    } finally {
      solver.delete();
    }
  }
}
