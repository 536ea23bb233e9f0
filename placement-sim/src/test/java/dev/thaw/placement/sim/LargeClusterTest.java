package dev.thaw.placement.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.placement.Baselines;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.CostModel;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Plan;
import dev.thaw.placement.Plans;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The solver on a generated cluster too large for the exact model over every pair (here for the generator). */
class LargeClusterTest {
  @Test
  void aLargeClusterIsSolvedOnEachModelsCheapestNodesAndBoundedByTheRelaxation() {
    Cluster c = SyntheticCluster.of(800, 300, 5); // ~150,000 pairs that fit: above the pruning threshold
    Plan greedy = Baselines.startupGreedy(CostModel.DEFAULT).place(c);
    Plan plan = new MipPlacement(MipPlacement.Options.DEFAULT.withTimeLimit(Duration.ofSeconds(20))).place(c);
    assertThat(Plans.violations(c, plan)).isEmpty();
    assertThat(plan.cost()).isLessThanOrEqualTo(greedy.cost());
    assertThat(plan.note()).contains("cheapest candidate nodes");
    assertThat(plan.bound()).as("a valid bound: the capacity-free relaxation").isPositive()
        .isEqualTo(Plans.lowerBound(c, CostModel.DEFAULT)).isLessThanOrEqualTo(plan.cost());
  }
}
