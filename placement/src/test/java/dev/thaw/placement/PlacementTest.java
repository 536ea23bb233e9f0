package dev.thaw.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Start costs, the baselines' rules, and the solver's plans: valid always, optimal on what brute force can check. */
class PlacementTest {
  static final double GB = 1e9;
  static final Node.Bandwidth BW = new Node.Bandwidth(2 * GB, 1 * GB, 0.1 * GB);
  static final MipPlacement SOLVER = new MipPlacement(new MipPlacement.Options(Duration.ofSeconds(10), 2, 7,
      CostModel.DEFAULT));
  static final MipPlacement SCIP = new MipPlacement(new MipPlacement.Options(Duration.ofSeconds(10), 1, 7,
      CostModel.DEFAULT, MipPlacement.Solver.SCIP));
  static final MipPlacement LP = new MipPlacement(new MipPlacement.Options(Duration.ofSeconds(10), 1, 7,
      CostModel.DEFAULT, MipPlacement.Solver.LP_ROUNDING));

  @Test
  void aStartReadsFromTheBestTierThatHoldsTheBytesAndBootsUnlessRestoredFromASnapshot() {
    Model m = new Model("llm", 10_000_000_000L, Map.of("H100", 12_000_000_000L), 1, 40L << 30, 30, Set.of(),
        Model.Demand.ofReplicas(1));
    Node snapshot = node("a", "z1", "H100", 8, Map.of(), Set.of("llm"));
    Node local = node("b", "z1", "H100", 8, Map.of("llm", 1.0), Set.of());
    Node half = node("c", "z1", "H100", 8, Map.of("llm", 0.5), Set.of());
    Node bare = node("d", "z1", "H100", 8, Map.of(), Set.of());
    StartCost withPeer = new StartCost(new Cluster(List.of(snapshot, local, half, bare), List.of(m)));
    assertThat(withPeer.seconds(m, snapshot)).as("12 GB snapshot at 2 GB/s, no boot").isCloseTo(6, within(1e-9));
    assertThat(withPeer.seconds(m, local)).as("10 GB local + 30 s boot").isCloseTo(35, within(1e-9));
    assertThat(withPeer.seconds(m, half)).as("5 GB local, 5 GB from the peer b, boot").isCloseTo(37.5, within(1e-9));
    assertThat(withPeer.seconds(m, bare)).as("10 GB from peer b + boot").isCloseTo(40, within(1e-9));
    StartCost noPeer = new StartCost(new Cluster(List.of(local, bare), List.of(m)));
    assertThat(noPeer.seconds(m, local)).as("its own copy is not a peer").isCloseTo(35, within(1e-9));
    StartCost originOnly = new StartCost(new Cluster(List.of(bare), List.of(m)));
    assertThat(originOnly.seconds(m, bare)).as("10 GB at 0.1 GB/s + boot").isCloseTo(130, within(1e-9));
    assertThat(originOnly.tier(m, bare)).isEqualTo("origin");
    assertThat(withPeer.tier(m, snapshot)).isEqualTo("snapshot");
  }

  @Test
  void eachBaselinePicksByItsOwnRule() {
    Model m = model("m", 1, 1, Set.of());
    Node loaded = node("a", "z1", "A10", 4, Map.of(), Set.of());
    Node holder = node("b", "z1", "A10", 4, Map.of("m", 1.0), Set.of());
    Node snap = node("c", "z1", "A10", 4, Map.of(), Set.of("m"));
    Node idle = node("d", "z1", "A10", 8, Map.of(), Set.of());
    Model busy = model("busy", 3, 1, Set.of());
    Cluster c = new Cluster(List.of(loaded, holder, snap, idle), List.of(m, busy),
        Map.of("busy", Map.of("a", 1, "b", 1, "c", 1)));
    assertThat(Baselines.spread(CostModel.DEFAULT).place(c).replicas().get("m")).containsOnlyKeys("d");
    assertThat(Baselines.imageLocality(CostModel.DEFAULT).place(c).replicas().get("m")).containsOnlyKeys("b");
    assertThat(Baselines.startupGreedy(CostModel.DEFAULT).place(c).replicas().get("m")).containsOnlyKeys("c");
    assertThat(SOLVER.place(c).replicas().get("m")).containsOnlyKeys("c");
  }

  @Test
  void theSolverSeesWhatAGreedyRuleCannotTwoModelsWantingTheSameNode() {
    // m2 weighs more, so greedy places it first, on a (its weights are there); m1's snapshot is on a too
    Model m1 = new Model("m1", 1_000_000_000L, Map.of("A10", 2_000_000_000L), 1, 1, 90, Set.of(), new Model.Demand(0, 1.9, 10));
    Model m2 = new Model("m2", 1_000_000_000L, Map.of(), 1, 1, 9.5, Set.of(), new Model.Demand(0, 2.0, 10));
    Node a = node("a", "z1", "A10", 1, Map.of("m2", 1.0), Set.of("m1"));
    Node b = node("b", "z1", "A10", 1, Map.of(), Set.of());
    Cluster c = new Cluster(List.of(a, b), List.of(m1, m2));
    Plan greedy = Baselines.startupGreedy(CostModel.DEFAULT).place(c);
    Plan thaw = SOLVER.place(c);
    assertThat(greedy.replicas()).isEqualTo(Map.of("m1", Map.of("b", 1), "m2", Map.of("a", 1)));
    assertThat(thaw.replicas()).isEqualTo(Map.of("m1", Map.of("a", 1), "m2", Map.of("b", 1)));
    assertThat(thaw.cost()).isLessThan(greedy.cost() / 2);
    assertThat(thaw.note()).isEqualTo("optimal (CP-SAT)");
    assertThat(thaw.gap()).isCloseTo(0, within(1e-6));
    assertThat(SCIP.place(c).replicas()).as("SCIP").isEqualTo(thaw.replicas());
    assertThat(LP.place(c).replicas()).as("the LP relaxation, rounded").isEqualTo(thaw.replicas());
  }

  @Test
  void aRunningReplicaStaysUnlessMovingItPaysForItsPenalty() {
    Model m = model("m", 1, 1, Set.of());
    Node runs = node("a", "z1", "A10", 1, Map.of(), Set.of());
    Node better = node("b", "z1", "A10", 1, Map.of("m", 1.0), Set.of());
    Cluster c = new Cluster(List.of(runs, better), List.of(m), Map.of("m", Map.of("a", 1)));
    for (PlacementPolicy p : policies()) {
      Plan plan = p.place(c);
      assertThat(plan.replicas()).as(p.name()).isEqualTo(Map.of("m", Map.of("a", 1)));
      assertThat(plan.cost()).as(p.name()).isZero();
    }
  }

  @Test
  void replicasSpreadOverZonesAndWhatCannotBePlacedIsCountedAsUnplaced() {
    Model m = model("m", 4, 1, Set.of("A10"));
    List<Node> nodes = List.of(node("a", "z1", "A10", 8, Map.of("m", 1.0), Set.of()),
        node("b", "z2", "A10", 8, Map.of(), Set.of()), node("c", "z3", "L4", 8, Map.of(), Set.of()));
    Cluster c = new Cluster(nodes, List.of(m));
    assertThat(Plans.zoneCap(c, m)).as("two usable zones for four replicas").isEqualTo(2);
    for (PlacementPolicy p : policies()) {
      Plan plan = p.place(c);
      assertThat(Plans.violations(c, plan)).as(p.name()).isEmpty();
      assertThat(plan.replicas().get("m")).as(p.name()).isEqualTo(Map.of("a", 2, "b", 2));
    }
    Model big = model("big", 3, 8, Set.of());
    Cluster full = new Cluster(List.of(node("a", "z1", "A10", 8, Map.of(), Set.of())), List.of(big));
    Plan plan = SOLVER.place(full);
    assertThat(plan.total("big")).isEqualTo(1);
    assertThat(plan.cost()).as("two replicas unplaced").isGreaterThanOrEqualTo(2 * CostModel.DEFAULT.unplacedSeconds());
  }

  @Test
  void aSolverOutOfTimeStillReturnsAValidGreedyPlanAndSaysWhy() {
    Cluster c = randomCluster(new Random(3), 30, 12);
    Plan plan = new MipPlacement(new MipPlacement.Options(Duration.ZERO, 1, 1, CostModel.DEFAULT)).place(c);
    assertThat(plan.note()).contains("time limit of 0 ms").contains("startup_greedy");
    assertThat(Plans.violations(c, plan)).isEmpty();
    assertThat(plan.replicas()).isEqualTo(Baselines.startupGreedy(CostModel.DEFAULT).place(c).replicas());
  }

  // --- helpers ---

  static List<PlacementPolicy> policies() {
    List<PlacementPolicy> all = new ArrayList<>(Baselines.all(11, CostModel.DEFAULT));
    all.addAll(List.of(SOLVER, SCIP, LP));
    return all;
  }

  static Node node(String id, String zone, String gpu, int gpus, Map<String, Double> cached, Set<String> snapshots) {
    return new Node(id, zone, gpu, gpus, 80L << 30, 1L << 40, BW, cached, snapshots);
  }

  static Model model(String id, int replicas, int gpusPerReplica, Set<String> gpuModels) {
    return new Model(id, 2_000_000_000L, Map.of("A10", 3_000_000_000L, "L4", 3_000_000_000L), gpusPerReplica, 1, 20,
        gpuModels, Model.Demand.ofReplicas(replicas));
  }

  /** A cluster of mixed GPU kinds over up to three zones, with cached weights, snapshots and running replicas. */
  static Cluster randomCluster(Random r, int nodeCount, int modelCount) {
    String[] gpus = {"A10", "L4", "H100"};
    List<Model> models = new ArrayList<>();
    for (int i = 0; i < modelCount; i++) {
      Set<String> allowed = r.nextInt(3) == 0 ? Set.of(gpus[r.nextInt(3)]) : Set.of();
      Map<String, Long> snapshotBytes = new HashMap<>();
      for (String g : gpus) {
        snapshotBytes.put(g, (1L + r.nextInt(20)) * 1_000_000_000L);
      }
      Model.Demand demand = r.nextBoolean() ? Model.Demand.ofReplicas(r.nextInt(4))
          : new Model.Demand(0, 0.5 + r.nextInt(40), 5 + r.nextInt(10));
      models.add(new Model("m" + i, (1L + r.nextInt(30)) * 1_000_000_000L, snapshotBytes, 1 + r.nextInt(2),
          (1L + r.nextInt(100)) << 30, 5 + r.nextInt(120), allowed, demand));
    }
    List<Node> nodes = new ArrayList<>();
    for (int i = 0; i < nodeCount; i++) {
      Map<String, Double> cached = new HashMap<>();
      Set<String> snaps = new java.util.HashSet<>();
      for (Model m : models) {
        int k = r.nextInt(6);
        if (k == 0) {
          cached.put(m.id(), 1.0);
        } else if (k == 1) {
          cached.put(m.id(), 0.5);
        } else if (k == 2) {
          snaps.add(m.id());
        }
      }
      nodes.add(new Node("n" + i, "z" + r.nextInt(3), gpus[r.nextInt(3)], r.nextInt(5), (24L + r.nextInt(60)) << 30,
          1L << 40, new Node.Bandwidth((1 + r.nextInt(3)) * GB, (0.5 + r.nextInt(2)) * GB, (0.05 + r.nextInt(3) / 10.0) * GB),
          cached, snaps));
    }
    Map<String, Map<String, Integer>> running = new LinkedHashMap<>();
    for (Model m : models) {
      for (Node n : nodes) {
        if (r.nextInt(5) == 0 && n.gpuCount() >= m.gpusPerReplica()) {
          running.computeIfAbsent(m.id(), k -> new LinkedHashMap<>()).put(n.id(), 1);
        }
      }
    }
    return new Cluster(nodes, models, running);
  }

  /** The least cost over every valid plan, by enumeration (tiny clusters only). */
  static double bruteForceOptimum(Cluster c) {
    List<String[]> pairs = new ArrayList<>();
    List<Integer> bounds = new ArrayList<>();
    for (Model m : c.models()) {
      for (Node n : c.nodes()) {
        if (m.runsOn(n)) {
          pairs.add(new String[] {m.id(), n.id()});
          bounds.add(Math.min(m.demand().replicasWanted(), n.gpuCount() / m.gpusPerReplica()));
        }
      }
    }
    int[] x = new int[pairs.size()];
    double best = Double.MAX_VALUE;
    while (true) {
      Map<String, Map<String, Integer>> rep = new HashMap<>();
      for (int i = 0; i < x.length; i++) {
        if (x[i] > 0) {
          rep.computeIfAbsent(pairs.get(i)[0], k -> new HashMap<>()).put(pairs.get(i)[1], x[i]);
        }
      }
      Plan p = new Plan("brute", rep, 0, 0, Duration.ZERO, "");
      if (Plans.violations(c, p).isEmpty()) {
        best = Math.min(best, Plans.cost(c, p, CostModel.DEFAULT));
      }
      int i = 0;
      while (i < x.length && x[i] == bounds.get(i)) {
        x[i] = 0;
        i++;
      }
      if (i == x.length) {
        return best;
      }
      x[i]++;
    }
  }
}
