package dev.thaw.placement.sim;

import dev.thaw.placement.Cluster;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.PlacementPolicy;
import dev.thaw.placement.Plan;
import dev.thaw.placement.StartCost;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;

/**
 * Replays a {@link Trace} against a cluster with one placement policy; every policy gets the same mechanics:
 *
 * <ul>
 *   <li><b>Serving</b>: a request goes to a ready replica of its model with a free slot (each replica serves
 *       {@code concurrency} requests at once, each for its service time, or {@code defaultServiceSeconds});
 *   <li><b>Autoscaler</b>: when every replica is busy, the request waits for the replica that frees first or is
 *       starting, unless that is later than a new replica would be ready, in which case a replica is started on the
 *       node the policy picks (a cold start: its start cost from the node's tiers, {@link StartCost}); with no GPUs
 *       left, it waits;
 *   <li><b>Keep-alive</b>: a replica idle for {@code keepAliveSeconds} is stopped (scale to zero);
 *   <li><b>Caches</b>: they start as the nodes given hold them (whole weights and snapshots; empty, or a running
 *       cluster's: {@link SyntheticCluster#warm}); a start leaves the model's weights in the node's cache; a replica
 *       that has served leaves a snapshot of itself there; both count against the node's cache capacity, least
 *       recently used evicted first (never what a running replica uses);
 *   <li><b>Pre-staging</b> (for the policies that do it): every {@code replanSeconds}, and sooner when the autoscaler
 *       scales a model out past one replica and the replicas the last plan gave it (a demand change; at most every
 *       {@code minReplanSeconds}), the planner places the replicas each model's recent peak request rate calls for
 *       (the busiest minute, decaying by a tenth a minute), and where a planned replica's node lacks the model's
 *       bytes, they are copied there ahead of demand (a snapshot for that kind of node when some node holds one, else
 *       the weights), within {@code prestageBytesPerSecond} per node; every such byte is charged to the origin.
 * </ul>
 * It reports cold starts, their seconds, the added latency requests saw (p50, p99), bytes from the origin and
 * GPU-seconds. Deterministic: no randomness beyond the policy's own seed.
 */
public final class Simulator {
  /**
   * @param concurrency requests one replica serves at once
   * @param replanSeconds how often the pre-staging planner runs at the latest
   * @param prestageBytesPerSecond per node, the bandwidth pre-staging may use
   * @param minReplanSeconds how soon after the last plan a demand change may call for the next
   */
  public record Options(double defaultServiceSeconds, int concurrency, double keepAliveSeconds, double replanSeconds,
      double prestageBytesPerSecond, double minReplanSeconds) {
    public static final Options DEFAULT = new Options(2.0, 4, 600, 3600, 50e6, 60);

    public Options {
      if (!(defaultServiceSeconds > 0 && concurrency > 0 && keepAliveSeconds >= 0 && replanSeconds > 0
          && prestageBytesPerSecond >= 0 && minReplanSeconds >= 0)) {
        throw new IllegalArgumentException("invalid simulator options: " + defaultServiceSeconds + " s per request, "
            + concurrency + " at once, keep-alive " + keepAliveSeconds + " s, re-plan every " + replanSeconds
            + " s (at least " + minReplanSeconds + " s apart), staging " + prestageBytesPerSecond + " B/s");
      }
    }
  }

  /** Where a new replica goes: the node a policy picks in the current state, or null when none fits. */
  public interface Picker {
    String pick(Model m, Cluster now);
  }

  /** Plans where replicas of the recent demand should run, so their bytes can be staged there. */
  public interface Planner {
    Plan plan(Cluster now);
  }

  /** What a run measured. */
  public record Result(String policy, int requests, int coldStarts, double coldStartSeconds, double p50AddedLatency,
      double p99AddedLatency, long originBytes, long prestagedBytes, double gpuSeconds, int unserved,
      double simulateSeconds, Map<String, Integer> coldStartsByTier, double coldStartFloorSeconds) {
    public Map<String, Object> toMap() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("cold_starts", coldStarts);
      m.put("cold_start_seconds", coldStartSeconds);
      m.put("cold_starts_by_tier", coldStartsByTier);
      m.put("cold_start_floor_seconds", coldStartFloorSeconds);
      m.put("p50_added_latency_s", p50AddedLatency);
      m.put("p99_added_latency_s", p99AddedLatency);
      m.put("origin_bytes", originBytes);
      m.put("prestaged_bytes", prestagedBytes);
      m.put("gpu_seconds", gpuSeconds);
      m.put("requests", requests);
      m.put("unserved", unserved);
      m.put("simulate_s", simulateSeconds);
      return m;
    }
  }

  private final List<Node> nodes;
  private final Map<String, Node> byId = new HashMap<>();
  private final Map<String, Model> models = new LinkedHashMap<>();
  private final Options options;

  public Simulator(List<Node> nodes, List<Model> models, Options options) {
    this.nodes = List.copyOf(nodes);
    nodes.forEach(n -> byId.put(n.id(), n));
    models.forEach(m -> this.models.put(m.id(), m));
    this.options = options;
  }

  private static final class Replica {
    final String model;
    final String node;
    final int gpus;
    final double startedAt;
    final double readyAt;
    final PriorityQueue<Double> busyUntil = new PriorityQueue<>();
    double lastActive;
    boolean served;

    Replica(String model, String node, int gpus, double startedAt, double readyAt) {
      this.model = model;
      this.node = node;
      this.gpus = gpus;
      this.startedAt = startedAt;
      this.readyAt = readyAt;
      this.lastActive = readyAt;
    }

    /** When it can take one more request, seen at time {@code t}. */
    double freeAt(double t, int concurrency) {
      while (!busyUntil.isEmpty() && busyUntil.peek() <= t) {
        busyUntil.poll();
      }
      double at = Math.max(t, readyAt);
      if (busyUntil.size() < concurrency) {
        return at;
      }
      return Math.max(at, busyUntil.peek());
    }

    void take(double start, double end) {
      while (busyUntil.size() > 0 && busyUntil.peek() <= start) {
        busyUntil.poll();
      }
      busyUntil.add(end);
      lastActive = Math.max(lastActive, end);
    }

    double idleSince() {
      return lastActive;
    }
  }

  /** A node's cache: entries ("w:MODEL" weights, "s:MODEL" snapshot) in least-recently-used order, with sizes. */
  private static final class Cache {
    final long capacity;
    final LinkedHashMap<String, Long> entries = new LinkedHashMap<>(16, 0.75f, true);
    long used;

    Cache(long capacity) {
      this.capacity = capacity;
    }

    boolean has(String key) {
      return entries.containsKey(key);
    }

    void touch(String key) {
      entries.get(key);
    }

    /** Adds an entry, evicting the least recently used that {@code pinned} does not protect; false if it cannot fit. */
    boolean put(String key, long bytes, java.util.Set<String> pinned) {
      if (entries.containsKey(key)) {
        entries.get(key);
        return true;
      }
      if (bytes > capacity) {
        return false;
      }
      Iterator<Map.Entry<String, Long>> it = entries.entrySet().iterator();
      while (used + bytes > capacity && it.hasNext()) {
        Map.Entry<String, Long> e = it.next();
        if (!pinned.contains(e.getKey())) {
          used -= e.getValue();
          it.remove();
        }
      }
      if (used + bytes > capacity) {
        return false;
      }
      entries.put(key, bytes);
      used += bytes;
      return true;
    }
  }

  /** Bytes that land in a node's cache at a time: a snapshot being written, a staged copy on its way. */
  private record Arrival(double at, String node, String key, long bytes) {}

  /** Runs the trace with {@code picker} deciding where new replicas go and, if not null, {@code planner} pre-staging. */
  public Result run(String policy, Trace trace, Picker picker, Planner planner) {
    long t0 = System.nanoTime();
    Map<String, Cache> caches = new HashMap<>();
    Map<String, Integer> freeGpus = new HashMap<>();
    for (Node n : nodes) {
      Cache c = new Cache(n.cacheBytes());
      Set<String> none = Set.of();
      n.cachedWeights().forEach((id, fraction) -> {
        Model m = models.get(id);
        if (m != null && fraction >= 1.0) {
          c.put("w:" + id, m.weightBytes(), none);
        }
      });
      for (String id : n.snapshots()) {
        Model m = models.get(id);
        Long snap = m == null ? null : m.snapshotBytes().get(n.gpuModel());
        if (snap != null) {
          c.put("s:" + id, snap, none);
        }
      }
      caches.put(n.id(), c);
      freeGpus.put(n.id(), n.gpuCount());
    }
    Map<String, List<Replica>> live = new HashMap<>();
    List<Double> added = new ArrayList<>();
    int coldStarts = 0;
    double floorSeconds = 0;
    Map<String, Integer> byTier = new LinkedHashMap<>();
    for (String tier : List.of("snapshot", "local", "peer", "origin")) {
      byTier.put(tier, 0);
    }
    int unserved = 0;
    double coldSeconds = 0;
    long originBytes = 0;
    long prestaged = 0;
    double gpuSeconds = 0;
    double nextReplan = 0;
    double lastReplan = Double.NEGATIVE_INFINITY;
    boolean demandChanged = false;
    Plan lastPlan = null;
    Staged lastStaged = null;
    Map<String, Double> peakRate = new HashMap<>(); // model -> its recent busiest minute, requests per second
    Map<String, Integer> thisMinute = new HashMap<>();
    long minute = 0;
    List<Arrival> arrivals = new ArrayList<>();
    Map<String, Double> stagingUntil = new HashMap<>(); // node -> when its staging link is free
    for (Trace.Request q : trace.requests()) {
      double t = q.time();
      for (Iterator<Arrival> it = arrivals.iterator(); it.hasNext(); ) {
        Arrival a = it.next();
        if (a.at() <= t) {
          it.remove();
          caches.get(a.node()).put(a.key(), a.bytes(), pinned(live, a.node()));
        }
      }
      // scale to zero: replicas idle for the keep-alive
      for (Iterator<Map.Entry<String, List<Replica>>> it = live.entrySet().iterator(); it.hasNext(); ) {
        List<Replica> rs = it.next().getValue();
        for (Iterator<Replica> ri = rs.iterator(); ri.hasNext(); ) {
          Replica r = ri.next();
          double stopAt = r.idleSince() + options.keepAliveSeconds();
          if (stopAt <= t && r.busyUntil.stream().allMatch(e -> e <= stopAt)) {
            ri.remove();
            gpuSeconds += (stopAt - r.startedAt) * r.gpus;
            freeGpus.merge(r.node, r.gpus, Integer::sum);
          }
        }
        if (rs.isEmpty()) {
          it.remove();
        }
      }
      Model m = models.get(q.model());
      if (m == null) {
        throw new IllegalArgumentException("the trace asks for model " + q.model() + ", which the cluster does not know");
      }
      if ((long) (t / 60) != minute) {
        long passed = (long) (t / 60) - minute;
        minute = (long) (t / 60);
        double decay = Math.pow(0.9, passed);
        peakRate.replaceAll((id, rate) -> rate * decay);
        thisMinute.clear();
      }
      peakRate.merge(m.id(), thisMinute.merge(m.id(), 1, Integer::sum) / 60.0, Math::max);
      if (planner != null && (t >= nextReplan || (demandChanged && t - lastReplan >= options.minReplanSeconds()))) {
        lastStaged = prestage(t, planner, lastStaged, live, caches, peakRate, arrivals, stagingUntil);
        prestaged += lastStaged.bytes();
        lastPlan = lastStaged.plan();
        demandChanged = false;
        lastReplan = t;
        nextReplan = t + options.replanSeconds();
      }
      double service = Double.isNaN(q.serviceSeconds()) ? options.defaultServiceSeconds() : q.serviceSeconds();
      List<Replica> rs = live.computeIfAbsent(m.id(), k -> new ArrayList<>());
      Replica best = null;
      double bestAt = Double.MAX_VALUE;
      for (Replica r : rs) {
        double at = r.freeAt(t, options.concurrency());
        if (at < bestAt) {
          bestAt = at;
          best = r;
        }
      }
      if (best == null || bestAt > t) {
        // every replica is busy or starting: would a new one be ready sooner?
        boolean room = freeGpus.entrySet().stream().anyMatch(e -> e.getValue() >= m.gpusPerReplica()
            && m.runsOn(byId.get(e.getKey())));
        Cluster now = room ? snapshot(live, caches, freeGpus, m) : null;
        String node = room ? picker.pick(m, now) : null;
        if (node != null) {
          StartCost cost = new StartCost(now);
          Node current = now.nodes().stream().filter(x -> x.id().equals(node)).findFirst().orElseThrow();
          double seconds = cost.seconds(m, current);
          if (best == null || t + seconds < bestAt) {
            String tier = cost.tier(m, current);
            coldStarts++;
            coldSeconds += seconds;
            floorSeconds += Math.min(seconds, floor(m, current, caches));
            byTier.merge(tier, 1, Integer::sum);
            if (tier.equals("origin")) {
              originBytes += Math.round(m.weightBytes() * (1 - current.cachedFraction(m.id())));
            }
            Replica r = new Replica(m.id(), node, m.gpusPerReplica(), t, t + seconds);
            rs.add(r);
            freeGpus.merge(node, -m.gpusPerReplica(), Integer::sum);
            caches.get(node).put("w:" + m.id(), m.weightBytes(), pinned(live, node));
            best = r;
            bestAt = r.readyAt;
            if (planner != null && rs.size() > Math.max(1, lastPlan == null ? 0 : lastPlan.replicas()
                .getOrDefault(m.id(), Map.of()).values().stream().mapToInt(Integer::intValue).sum())) {
              demandChanged = true; // scaling out past the replicas the last plan gave it
            }
          }
        }
      }
      if (best == null) {
        unserved++; // no replica of its model and no GPU free anywhere
        continue;
      }
      double start = Math.max(t, bestAt);
      best.take(start, start + service);
      added.add(start - t);
      Cache c = caches.get(best.node);
      if (c.has("w:" + m.id())) {
        c.touch("w:" + m.id());
      }
      if (!best.served) {
        // the snapshot is taken once the replica has answered its first request
        best.served = true;
        Long snap = m.snapshotBytes().get(byId.get(best.node).gpuModel());
        if (snap != null) {
          arrivals.add(new Arrival(start + service, best.node, "s:" + m.id(), snap));
        }
      }
    }
    double end = trace.requests().isEmpty() ? 0 : trace.requests().getLast().time();
    for (List<Replica> rs : live.values()) {
      for (Replica r : rs) {
        gpuSeconds += (Math.max(end, r.idleSince() + options.keepAliveSeconds()) - r.startedAt) * r.gpus;
      }
    }
    List<Double> waited = added.stream().filter(a -> a > 0).sorted().toList();
    return new Result(policy, trace.requests().size(), coldStarts, coldSeconds, percentile(waited, 0.50),
        percentile(waited, 0.99), originBytes + prestaged, prestaged, gpuSeconds, unserved,
        (System.nanoTime() - t0) / 1e9, byTier, floorSeconds);
  }

  /** A plan, the replicas per model it was made for, and the bytes staged for it. */
  private record Staged(Plan plan, Map<String, Integer> wanted, long bytes) {}

  /** What a plan was made for: each model's replicas wanted. */
  private static Map<String, Integer> wanted(List<Model> demand) {
    Map<String, Integer> out = new HashMap<>();
    demand.forEach(m -> out.put(m.id(), m.demand().replicasWanted()));
    return out;
  }

  /**
   * Plans the replicas each model's peak rate calls for and starts copying their bytes to the planned nodes that lack
   * them and are not already getting them: one copy after another per node at {@code prestageBytesPerSecond}, queued
   * no further ahead than the next timed plan.
   */
  private Staged prestage(double t, Planner planner, Staged last, Map<String, List<Replica>> live, Map<String, Cache> caches,
      Map<String, Double> peakRate, List<Arrival> arrivals, Map<String, Double> stagingUntil) {
    List<Model> demand = new ArrayList<>();
    for (Model m : models.values()) {
      double rate = peakRate.getOrDefault(m.id(), 0.0);
      if (rate <= 1e-6) {
        continue;
      }
      // replicas for the rate at the default service time, at least one, and at least those running now
      double capacity = options.concurrency() / options.defaultServiceSeconds();
      int runningNow = live.getOrDefault(m.id(), List.of()).size();
      demand.add(new Model(m.id(), m.weightBytes(), m.snapshotBytes(), m.gpusPerReplica(), m.gpuMemoryPerReplica(),
          m.bootSeconds(), m.gpuModels(), new Model.Demand(0, Math.max(rate, runningNow * capacity), capacity)));
    }
    if (demand.isEmpty()) {
      return new Staged(null, Map.of(), 0);
    }
    Map<String, Map<String, Integer>> running = new LinkedHashMap<>();
    live.forEach((m, rs) -> rs.forEach(r -> running.computeIfAbsent(m, k -> new LinkedHashMap<>())
        .merge(r.node, 1, Integer::sum)));
    running.keySet().retainAll(demand.stream().map(Model::id).toList());
    List<Node> now = new ArrayList<>();
    for (Node n : nodes) {
      now.add(withCache(n, caches.get(n.id()), n.gpuCount()));
    }
    // the solver runs again when what each model wants changed; otherwise the last plan's gaps are staged again
    Map<String, Integer> wanted = wanted(demand);
    Plan plan = last != null && last.plan() != null && wanted.equals(last.wanted()) ? last.plan()
        : planner.plan(new Cluster(now, demand, running));
    long copied = 0;
    if (options.prestageBytesPerSecond() <= 0) {
      return new Staged(plan, wanted, 0);
    }
    for (var e : plan.replicas().entrySet()) {
      Model m = models.get(e.getKey());
      for (String node : e.getValue().keySet()) {
        Cache c = caches.get(node);
        if (c.has("w:" + m.id()) || c.has("s:" + m.id()) || arrivals.stream().anyMatch(a -> a.node().equals(node)
            && a.key().substring(2).equals(m.id()))) {
          continue;
        }
        double from = Math.max(t, stagingUntil.getOrDefault(node, t));
        if (from >= t + options.replanSeconds()) {
          continue; // its link is booked until past the next plan
        }
        // a snapshot of this kind of node, where one exists elsewhere, restores in seconds; weights still boot
        String gpu = byId.get(node).gpuModel();
        Long snap = m.snapshotBytes().get(gpu);
        boolean snapshotExists = snap != null && nodes.stream().anyMatch(n -> n.gpuModel().equals(gpu)
            && caches.get(n.id()).has("s:" + m.id()));
        String key = snapshotExists ? "s:" + m.id() : "w:" + m.id();
        long bytes = snapshotExists ? snap : m.weightBytes();
        double at = from + bytes / options.prestageBytesPerSecond();
        stagingUntil.put(node, at);
        arrivals.add(new Arrival(at, node, key, bytes));
        copied += bytes;
      }
    }
    return new Staged(plan, wanted, copied);
  }

  /**
   * The least a start of {@code m} on {@code n} could cost under any policy: a snapshot restore from local disk once
   * the model's bytes are anywhere in the cluster (any policy could have staged them there), else all of it from the
   * origin (no policy knows a model before it is asked for).
   */
  private double floor(Model m, Node n, Map<String, Cache> caches) {
    boolean anywhere = caches.values().stream().anyMatch(c -> c.has("w:" + m.id()) || c.has("s:" + m.id()));
    if (!anywhere) {
      return Double.MAX_VALUE;
    }
    Long snap = m.snapshotBytes().get(n.gpuModel());
    double local = n.bandwidth().localDisk();
    return snap != null ? snap / local : m.weightBytes() / local + m.bootSeconds();
  }

  /** The cluster as the policies see it now: free GPUs only, caches as they are, replicas of {@code m} running. */
  private Cluster snapshot(Map<String, List<Replica>> live, Map<String, Cache> caches, Map<String, Integer> freeGpus,
      Model m) {
    List<Node> now = new ArrayList<>(nodes.size());
    Map<String, Integer> mine = new HashMap<>();
    for (Replica r : live.getOrDefault(m.id(), List.of())) {
      mine.merge(r.node, 1, Integer::sum);
    }
    for (Node n : nodes) {
      // its own replicas' GPUs count as free here, since they appear as running replicas of m
      int free = freeGpus.get(n.id()) + mine.getOrDefault(n.id(), 0) * m.gpusPerReplica();
      now.add(withCache(n, caches.get(n.id()), free));
    }
    int wanted = live.getOrDefault(m.id(), List.of()).size() + 1;
    Model one = new Model(m.id(), m.weightBytes(), m.snapshotBytes(), m.gpusPerReplica(), m.gpuMemoryPerReplica(),
        m.bootSeconds(), m.gpuModels(), Model.Demand.ofReplicas(wanted));
    Map<String, Map<String, Integer>> running = mine.isEmpty() ? Map.of() : Map.of(m.id(), mine);
    return new Cluster(now, List.of(one), running);
  }

  private static Node withCache(Node n, Cache c, int gpus) {
    Map<String, Double> cached = new HashMap<>();
    java.util.Set<String> snaps = new java.util.HashSet<>();
    for (String key : c.entries.keySet()) {
      if (key.startsWith("w:")) {
        cached.put(key.substring(2), 1.0);
      } else {
        snaps.add(key.substring(2));
      }
    }
    return n.with(Math.max(0, gpus), cached, snaps);
  }

  private static java.util.Set<String> pinned(Map<String, List<Replica>> live, String node) {
    java.util.Set<String> out = new java.util.HashSet<>();
    live.forEach((m, rs) -> {
      for (Replica r : rs) {
        if (r.node.equals(node)) {
          out.add("w:" + m);
          out.add("s:" + m);
        }
      }
    });
    return out;
  }

  private static double percentile(List<Double> sorted, double p) {
    if (sorted.isEmpty()) {
      return 0;
    }
    int i = (int) Math.ceil(p * sorted.size()) - 1;
    return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
  }

  /** A policy's new-replica choice: the node its plan adds a replica of {@code m} on, in the cluster given. */
  public static Picker pickerOf(PlacementPolicy policy) {
    return (m, now) -> {
      Plan p = policy.place(now);
      for (Node n : now.nodes()) {
        if (p.count(m.id(), n.id()) > now.running(m.id(), n.id())) {
          return n.id();
        }
      }
      return null;
    };
  }
}
