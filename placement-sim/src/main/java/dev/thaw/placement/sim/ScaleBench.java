package dev.thaw.placement.sim;

import dev.thaw.placement.Baselines;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Model;
import dev.thaw.placement.Plan;
import java.io.PrintStream;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Solve time and optimality gap of each solver on {@link SyntheticCluster}s of given sizes (nodes x models). The gap of
 * a plan is measured against the best lower bound any solver proved for that instance.
 */
public final class ScaleBench {
  private ScaleBench() {}

  public record Size(int nodes, int models) {
    @Override
    public String toString() {
      return nodes + "x" + models;
    }
  }

  public static final List<Size> SIZES = List.of(new Size(100, 50), new Size(1000, 200), new Size(1000, 500),
      new Size(5000, 500));

  /**
   * @param maxExactPairs above this many node-model pairs, CP-SAT and SCIP are not run (unless {@code chosen})
   * @return size ("1000x500") to: {@code solve_s} and {@code gap} of {@code chosen}, and per solver its figures
   */
  public static Map<String, Object> run(List<Size> sizes, long seed, MipPlacement.Options options,
      MipPlacement.Solver chosen, long maxExactPairs, PrintStream log) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (Size size : sizes) {
      long t0 = System.nanoTime();
      Cluster c = SyntheticCluster.of(size.nodes(), size.models(), seed);
      log.printf(Locale.ROOT, "placement bench %s: cluster generated in %.2f s%n", size, (System.nanoTime() - t0) / 1e9);
      Map<String, Plan> plans = new LinkedHashMap<>();
      Plan greedy = Baselines.startupGreedy(options.costs()).place(c);
      plans.put("startup_greedy", greedy);
      for (MipPlacement.Solver s : MipPlacement.Solver.values()) {
        if (s != chosen && s != MipPlacement.Solver.LP_ROUNDING && size.nodes() * (long) size.models() > maxExactPairs) {
          continue; // the exact solvers cannot even build a model this size within the limit (see docs/benchmarks.md)
        }
        plans.put(s.name().toLowerCase(Locale.ROOT), new MipPlacement(options.withSolver(s)).place(c));
      }
      // the reference bound: the whole LP relaxation, unpruned and given time (measurement only)
      Plan reference = new MipPlacement(options.withSolver(MipPlacement.Solver.LP_ROUNDING).unpruned()
          .withTimeLimit(Duration.ofSeconds(300))).place(c);
      log.printf(Locale.ROOT, "  %-15s %7.2f s  bound %.4g  %s%n", "whole LP", reference.solveTime().toNanos() / 1e9,
          reference.bound(), reference.note());
      double bound = Math.max(reference.bound(), plans.values().stream().mapToDouble(Plan::bound).max().orElse(0));
      Map<String, Object> entry = new LinkedHashMap<>();
      Map<String, Object> details = new LinkedHashMap<>();
      for (var e : plans.entrySet()) {
        Plan p = e.getValue();
        // no solver proved a bound: no gap can be told (NaN, null in JSON)
        double gap = bound <= 0 ? Double.NaN : p.cost() <= 0 ? 0 : Math.max(0, (p.cost() - bound) / p.cost());
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("solve_s", p.solveTime().toNanos() / 1e9);
        d.put("cost", p.cost());
        d.put("bound", p.bound());
        d.put("gap", Double.isNaN(gap) ? null : gap);
        d.put("note", p.note());
        int unplaced = 0;
        for (Model m : c.models()) {
          unplaced += Math.max(0, m.demand().replicasWanted() - p.total(m.id()));
        }
        d.put("unplaced_replicas", unplaced);
        details.put(e.getKey(), d);
        log.printf(Locale.ROOT, "  %-15s %7.2f s  cost %.4g  gap %.4f  unplaced %d  %s%n", e.getKey(),
            p.solveTime().toNanos() / 1e9, p.cost(), gap, unplaced, p.note());
      }
      @SuppressWarnings("unchecked")
      Map<String, Object> main = (Map<String, Object>) details.get(chosen.name().toLowerCase(Locale.ROOT));
      entry.put("solve_s", main.get("solve_s"));
      entry.put("gap", main.get("gap"));
      entry.put("solver", chosen.name().toLowerCase(Locale.ROOT));
      entry.put("best_bound", bound);
      entry.put("whole_lp_s", reference.solveTime().toNanos() / 1e9);
      entry.put("solvers", details);
      out.put(size.toString(), entry);
    }
    return out;
  }

  /** {@code NxM} as a size. */
  public static Size parse(String s) {
    String[] p = s.split("x");
    if (p.length != 2) {
      throw new IllegalArgumentException("a size is NODESxMODELS, e.g. 1000x500, not " + s);
    }
    return new Size(Integer.parseInt(p[0].strip()), Integer.parseInt(p[1].strip()));
  }
}
