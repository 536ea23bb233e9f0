package dev.thaw.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.LongRange;

/**
 * Over random clusters (mixed GPU kinds, zones, cached weights, snapshots, running replicas): every policy's plan keeps
 * every constraint, the solver's plan costs what brute force finds optimal, and the same seed gives the same plan.
 */
class PlacementPropertiesTest {
  private static final MipPlacement SOLVER = PlacementTest.SOLVER;

  @Property(tries = 60)
  void noPlanOfAnyPolicyEverBreaksAConstraint(@ForAll @LongRange(min = 0, max = 1_000_000) long seed) {
    Random r = new Random(seed);
    Cluster c = PlacementTest.randomCluster(r, 1 + r.nextInt(12), 1 + r.nextInt(6));
    for (PlacementPolicy p : PlacementTest.policies()) {
      Plan plan = p.place(c);
      assertThat(Plans.violations(c, plan)).as(p.name() + " on seed " + seed).isEmpty();
      assertThat(plan.cost()).as(p.name()).isCloseTo(Plans.cost(c, plan, CostModel.DEFAULT), within(1e-6));
    }
  }

  @Property(tries = 25)
  void tinyInstancesAreSolvedToTheOptimumThatBruteForceFinds(@ForAll @LongRange(min = 0, max = 1_000_000) long seed) {
    Random r = new Random(seed);
    Cluster c = PlacementTest.randomCluster(r, 2 + r.nextInt(2), 1 + r.nextInt(3));
    double best = PlacementTest.bruteForceOptimum(c);
    Plan plan = SOLVER.place(c);
    // the objective is rounded to milliseconds per term; nothing else may separate the two
    assertThat(plan.cost()).as("seed " + seed + ", " + plan.note()).isCloseTo(best, within(0.01 + best * 1e-9));
    assertThat(Plans.lowerBound(c, CostModel.DEFAULT)).as("the relaxed bound never exceeds the optimum")
        .isLessThanOrEqualTo(best + 1e-6);
    Plan scip = PlacementTest.SCIP.place(c);
    assertThat(scip.cost()).as("SCIP, seed " + seed + ", " + scip.note()).isCloseTo(best, within(1e-6 + best * 1e-9));
  }

  @Property(tries = 10)
  void theSameSeedGivesTheSamePlan(@ForAll @LongRange(min = 0, max = 1_000_000) long seed) {
    Cluster c = PlacementTest.randomCluster(new Random(seed), 20, 8);
    assertThat(Baselines.random(seed, CostModel.DEFAULT).place(c).replicas())
        .isEqualTo(Baselines.random(seed, CostModel.DEFAULT).place(c).replicas());
    assertThat(SOLVER.place(c).replicas()).isEqualTo(SOLVER.place(c).replicas());
  }

}
