package dev.thaw.placement.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.placement.Baselines;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.CostModel;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.Plan;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The simulator's mechanics, the same for every policy: cold starts by tier, keep-alive, caches, pre-staging. */
class SimulatorTest {
  static final double GB = 1e9;
  static final Node ONE = new Node("n", "z", "A10", 1, 80L << 30, 100_000_000_000L,
      new Node.Bandwidth(2 * GB, 1 * GB, 0.1 * GB), Map.of(), Set.of());
  static final Model M = new Model("m", 10_000_000_000L, Map.of("A10", 4_000_000_000L), 1, 1, 30, Set.of(),
      Model.Demand.ofReplicas(0));
  static final Simulator.Options OPTIONS = new Simulator.Options(1.0, 1, 60, 3600, 50e6, 60);

  private static Trace trace(double... times) {
    List<Trace.Request> rs = new ArrayList<>();
    for (double t : times) {
      rs.add(new Trace.Request(t, "m", Double.NaN));
    }
    return new Trace(rs, true);
  }

  @Test
  void aColdStartFetchesFromTheOriginThenWarmRequestsWaitNothingThenAfterKeepAliveASnapshotRestores() {
    Simulator sim = new Simulator(List.of(ONE), List.of(M), OPTIONS);
    // t=0: cold, 10 GB at 0.1 GB/s + 30 s boot = 130 s; t=150: warm; t=1000: stopped at 211 (idle 60 s after 151),
    // so cold again, from the snapshot the first replica left: 4 GB at 2 GB/s = 2 s
    Simulator.Result r = sim.run("startup_greedy", trace(0, 150, 1000),
        Simulator.pickerOf(Baselines.startupGreedy(CostModel.DEFAULT)), null);
    assertThat(r.coldStarts()).isEqualTo(2);
    assertThat(r.coldStartSeconds()).isCloseTo(132, within(1e-9));
    assertThat(r.originBytes()).isEqualTo(10_000_000_000L);
    assertThat(r.p99AddedLatency()).isCloseTo(130, within(1e-9));
    assertThat(r.p50AddedLatency()).as("of the requests that waited: 2 s and 130 s").isCloseTo(2, within(1e-9));
    // GPU-seconds: 0..211 (served 130..131, 150..151, idle until 211), then 1000..1063
    assertThat(r.gpuSeconds()).isCloseTo(211 + 63, within(1e-9));
    assertThat(r.unserved()).isZero();
  }

  @Test
  void aBusyReplicaMakesTheAutoscalerStartAnotherOnlyWhenThatIsSoonerThanWaiting() {
    Node two = new Node("n", "z", "A10", 2, 80L << 30, 100_000_000_000L, new Node.Bandwidth(2 * GB, 1 * GB, 0.1 * GB),
        Map.of(), Set.of());
    Simulator sim = new Simulator(List.of(two), List.of(M), new Simulator.Options(500, 1, 10_000, 3600, 50e6, 60));
    Simulator.Result r = sim.run("startup_greedy", new Trace(List.of(new Trace.Request(0, "m", 500),
        new Trace.Request(140, "m", 1)), true), Simulator.pickerOf(Baselines.startupGreedy(CostModel.DEFAULT)), null);
    // the first replica is busy until 630; a second one (weights now local: 5 s + 30 s boot; no snapshot yet, the
    // first has not finished a request) is ready at 175
    assertThat(r.coldStarts()).isEqualTo(2);
    assertThat(r.coldStartSeconds()).isCloseTo(130 + 35, within(1e-9));
    assertThat(r.originBytes()).as("the second start reads the weights the first left on the node")
        .isEqualTo(10_000_000_000L);
  }

  private static Node a10(String id, int gpus, Set<String> snapshots) {
    return new Node(id, "z-" + id, "A10", gpus, 80L << 30, 100_000_000_000L,
        new Node.Bandwidth(2 * GB, 1 * GB, 0.1 * GB), Map.of(), snapshots);
  }

  /** A planner that wants m's replica on b, and remembers when it was asked. */
  private static Simulator.Planner onB(List<Cluster> seen) {
    return now -> {
      seen.add(now);
      return new Plan("test", Map.of("m", Map.of("b", 1)), 0, 0, java.time.Duration.ZERO, "");
    };
  }

  @Test
  void preStagingCopiesTheSnapshotANodeHoldsToThePlannedNodeAheadOfDemandAndChargesItToTheOrigin() {
    // a starts with m's snapshot in its cache; the first plan (at the first request) wants m on b too
    Simulator sim = new Simulator(List.of(a10("a", 1, Set.of("m")), a10("b", 1, Set.of())), List.of(M),
        new Simulator.Options(1, 1, 10_000, 3600, 100e6, 60));
    List<Cluster> seen = new ArrayList<>();
    Trace t = new Trace(List.of(new Trace.Request(0, "m", 500), new Trace.Request(50, "m", 1)), true);
    Simulator.Result r = sim.run("thaw", t, Simulator.pickerOf(Baselines.startupGreedy(CostModel.DEFAULT)), onB(seen));
    assertThat(seen).hasSize(1);
    assertThat(seen.getFirst().models()).extracting(Model::id).containsExactly("m");
    // t=0: a restores its snapshot (4 GB at 2 GB/s) and is busy until 502; b's copy (4 GB at 0.1 GB/s) lands at 40;
    // t=50: rather than wait for a, b restores the staged snapshot in 2 s
    assertThat(r.coldStartsByTier()).containsEntry("snapshot", 2).containsEntry("origin", 0);
    assertThat(r.coldStartSeconds()).isCloseTo(4, within(1e-9));
    assertThat(r.prestagedBytes()).isEqualTo(4_000_000_000L);
    assertThat(r.originBytes()).as("only the staged copy").isEqualTo(4_000_000_000L);
    assertThat(r.coldStartFloorSeconds()).isCloseTo(4, within(1e-9));
  }

  @Test
  void aStagedCopyStillOnItsWayDoesNotHelpAStartAndIsNotSentTwice() {
    Simulator sim = new Simulator(List.of(a10("a", 1, Set.of("m")), a10("b", 1, Set.of())), List.of(M),
        new Simulator.Options(1, 1, 10_000, 3600, 100e6, 10));
    List<Cluster> seen = new ArrayList<>();
    Trace t = new Trace(List.of(new Trace.Request(0, "m", 500), new Trace.Request(20, "m", 500),
        new Trace.Request(35, "m", 1)), true);
    Simulator.Result r = sim.run("thaw", t, Simulator.pickerOf(Baselines.startupGreedy(CostModel.DEFAULT)), onB(seen));
    // t=20: b's copy lands only at 40, so b boots from the weights a's start left on a (10 GB at 1 GB/s + 30 s),
    // sooner than a frees
    assertThat(r.coldStartsByTier()).containsEntry("snapshot", 1).containsEntry("peer", 1);
    assertThat(r.coldStartSeconds()).isCloseTo(2 + 40, within(1e-9));
    assertThat(seen).as("a demand change (two replicas, the plan gave one) plans again at 35").hasSize(2);
    assertThat(r.prestagedBytes()).as("the copy on its way is not sent again").isEqualTo(4_000_000_000L);
    assertThat(r.coldStartFloorSeconds()).as("b could have had the snapshot: 2 s each").isCloseTo(4, within(1e-9));
  }

  @Test
  void theCachesStartAsTheNodesGivenHoldThem() {
    Node warm = ONE.with(1, Map.of("m", 1.0), Set.of());
    Simulator.Result r = new Simulator(List.of(warm), List.of(M), OPTIONS).run("spread", trace(0),
        Simulator.pickerOf(Baselines.spread(CostModel.DEFAULT)), null);
    assertThat(r.coldStartsByTier()).containsEntry("local", 1);
    assertThat(r.coldStartSeconds()).as("10 GB at 2 GB/s, then the 30 s boot").isCloseTo(35, within(1e-9));
    assertThat(r.originBytes()).isZero();
  }

  @Test
  void everyModelOfATraceGetsItsOwnSizeFromTheDefaultDistribution() {
    List<Model> models = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      models.add(SyntheticCluster.model("model-" + i, 42));
    }
    assertThat(models).extracting(Model::weightBytes).allSatisfy(b -> assertThat(b).isBetween(1_000_000_000L,
        70_000_000_000L));
    // neighbouring ids once drew the same size
    assertThat(models.stream().map(m -> m.weightBytes() / 1_000_000_000L).distinct().count()).isGreaterThan(10);
    assertThat(models.stream().mapToLong(Model::weightBytes).max().getAsLong()).isGreaterThan(20_000_000_000L);
    assertThat(SyntheticCluster.model("model-3", 42)).isEqualTo(models.get(3));
  }

  @Test
  void everyPolicyRunsTheSameTraceDeterministicallyAndAnUnknownModelIsAClearError() {
    Trace t = Traces.synthetic(2000, 86_400, 8, 1.0, 0.1, 5);
    List<Node> nodes = SyntheticCluster.nodes(12, 5);
    List<Model> models = Simulation.modelsFor(t, 5);
    Map<String, Simulator.Result> first = Simulation.run(nodes, models, t, Simulator.Options.DEFAULT,
        Simulation.POLICIES, 5);
    Map<String, Simulator.Result> again = Simulation.run(nodes, models, t, Simulator.Options.DEFAULT,
        Simulation.POLICIES, 5);
    assertThat(first.keySet()).containsExactlyElementsOf(Simulation.POLICIES);
    for (String p : Simulation.POLICIES) {
      Simulator.Result x = first.get(p);
      Simulator.Result y = again.get(p);
      assertThat(x.requests()).isEqualTo(2000);
      assertThat(x.coldStarts()).as(p).isPositive().isEqualTo(y.coldStarts());
      assertThat(x.coldStartSeconds()).as(p).isEqualTo(y.coldStartSeconds());
      assertThat(x.originBytes()).as(p).isEqualTo(y.originBytes());
      assertThat(x.gpuSeconds()).as(p).isEqualTo(y.gpuSeconds());
      assertThat(x.toMap()).containsKeys("cold_starts", "cold_start_seconds", "p99_added_latency_s", "origin_bytes",
          "gpu_seconds");
    }
    assertThat(first.get("spread").prestagedBytes()).isZero();
    Trace unknown = new Trace(List.of(new Trace.Request(0, "nobody", Double.NaN)), true);
    assertThatThrownBy(() -> Simulation.run(nodes, models, unknown, Simulator.Options.DEFAULT, List.of("spread"), 5))
        .hasMessageContaining("model nobody");
  }
}
