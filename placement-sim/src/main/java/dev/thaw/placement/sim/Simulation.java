package dev.thaw.placement.sim;

import dev.thaw.placement.Baselines;
import dev.thaw.placement.CostModel;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.Plan;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every policy over the same trace and cluster ({@link Simulator}): {@code thaw} (new replicas where Thaw's last plan
 * put them, else where they start fastest; that plan also pre-stages bytes), {@code spread}, {@code image_locality},
 * {@code startup_greedy}, {@code random}, and {@code startup_greedy_prestaged} (startup-greedy picks with Thaw's
 * pre-staging, so what the solver adds beyond pre-staging shows).
 */
public final class Simulation {
  public static final List<String> POLICIES = List.of("thaw", "spread", "image_locality", "startup_greedy", "random",
      "startup_greedy_prestaged");

  private Simulation() {}

  /** Runs each of {@code policies} (names from {@link #POLICIES}); policy name to its result, in the order asked. */
  public static Map<String, Simulator.Result> run(List<Node> nodes, List<Model> models, Trace trace,
      Simulator.Options options, List<String> policies, long seed) {
    Simulator sim = new Simulator(nodes, models, options);
    CostModel costs = CostModel.DEFAULT;
    Map<String, Simulator.Result> out = new LinkedHashMap<>();
    for (String p : policies) {
      Simulator.Result r = switch (p) {
        case "spread" -> sim.run(p, trace, Simulator.pickerOf(Baselines.spread(costs)), null);
        case "image_locality" -> sim.run(p, trace, Simulator.pickerOf(Baselines.imageLocality(costs)), null);
        case "startup_greedy" -> sim.run(p, trace, Simulator.pickerOf(Baselines.startupGreedy(costs)), null);
        case "random" -> sim.run(p, trace, Simulator.pickerOf(Baselines.random(seed, costs)), null);
        case "startup_greedy_prestaged" -> sim.run(p, trace, Simulator.pickerOf(Baselines.startupGreedy(costs)),
            planner(seed, null));
        case "thaw" -> {
          Plan[] last = new Plan[1];
          Simulator.Picker greedy = Simulator.pickerOf(Baselines.startupGreedy(costs));
          Simulator.Picker planned = (m, now) -> {
            if (last[0] != null) {
              for (Node n : now.nodes()) {
                if (last[0].count(m.id(), n.id()) > now.running(m.id(), n.id()) && m.runsOn(n)
                    && n.gpuCount() >= m.gpusPerReplica() * (now.running(m.id(), n.id()) + 1)) {
                  return n.id();
                }
              }
            }
            return greedy.pick(m, now);
          };
          yield sim.run(p, trace, planned, planner(seed, last));
        }
        default -> throw new IllegalArgumentException("unknown policy " + p + "; the policies are " + POLICIES);
      };
      out.put(p, r);
    }
    return out;
  }

  private static Simulator.Planner planner(long seed, Plan[] keep) {
    // the LP rounded: a simulation plans hundreds of times, and SCIP's proof would cost four times as long
    MipPlacement solver = new MipPlacement(new MipPlacement.Options(Duration.ofMillis(500), 1, seed, CostModel.DEFAULT,
        MipPlacement.Solver.LP_ROUNDING));
    return now -> {
      Plan p = solver.place(now);
      if (keep != null) {
        keep[0] = p;
      }
      return p;
    };
  }

  /** Models for a trace's ids, from {@link SyntheticCluster#model}'s default distribution. */
  public static List<Model> modelsFor(Trace trace, long seed) {
    return modelsFor(trace, seed, Map.of());
  }

  /** Models for a trace's ids: those {@code given} names as given ({@link ModelSizes}), the others by default. */
  public static List<Model> modelsFor(Trace trace, long seed, Map<String, Model> given) {
    List<Model> out = new ArrayList<>();
    for (String id : trace.models()) {
      out.add(given.containsKey(id) ? given.get(id) : SyntheticCluster.model(id, seed));
    }
    return out;
  }
}
