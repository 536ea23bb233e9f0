package dev.thaw.sidecar.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.Plan;
import io.etcd.jetcd.election.LeaderKey;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.PutOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The leader's planning: while this member leads, it places the demand over the registered members with Thaw's solver
 * ({@code placement/}) on a timer and, debounced, on every change to members or demand, and writes
 * {@code PREFIX/plan} with a revision one above the last, in a transaction that succeeds only while its election key
 * (bound to its lease) exists. A write refused for want of that key means leadership is lost.
 */
final class Planner {
  private static final Logger LOG = Logger.getLogger(Planner.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  private final ClusterConfig config;
  private final ClusterKeys keys;
  private final ScheduledExecutorService timer;
  private final Consumer<String> lostLeadership;
  private LeaderKey leading; // null unless this member leads
  private ScheduledFuture<?> pendingPlan;
  private ScheduledFuture<?> periodicPlan;

  /** Plans on {@code timer}; tells {@code lostLeadership} why when etcd refuses a plan for want of the election key. */
  Planner(ClusterConfig config, ClusterKeys keys, ScheduledExecutorService timer, Consumer<String> lostLeadership) {
    this.config = config;
    this.keys = keys;
    this.timer = timer;
    this.lostLeadership = lostLeadership;
  }

  /** This member was elected with {@code key}: plan now, and at least every replan interval. */
  synchronized void lead(LeaderKey key) {
    leading = key;
    long every = Math.max(1000, config.getReplanInterval().toMillis());
    periodicPlan = timer.scheduleWithFixedDelay(this::planNow, 0, every, TimeUnit.MILLISECONDS);
  }

  /** This member no longer leads: no more plans from it. */
  synchronized void stop() {
    leading = null;
    if (periodicPlan != null) {
      periodicPlan.cancel(false);
      periodicPlan = null;
    }
    if (pendingPlan != null) {
      pendingPlan.cancel(false);
      pendingPlan = null;
    }
  }

  /** A change: plan once things have been quiet for the debounce (only while leading). */
  synchronized void planSoon() {
    if (leading == null) {
      return;
    }
    if (pendingPlan != null) {
      pendingPlan.cancel(false);
    }
    pendingPlan = timer.schedule(this::planNow, config.getDebounce().toMillis(), TimeUnit.MILLISECONDS);
  }

  private void planNow() {
    LeaderKey mine;
    synchronized (this) {
      mine = leading;
    }
    if (mine == null) {
      return;
    }
    try {
      Map<String, Registration> members = keys.members();
      Map<String, JsonNode> demand = keys.demand();
      Optional<String> current = keys.plan();
      long revision = current.isEmpty() ? 0 : JSON.readTree(current.get()).path("revision").asLong();
      Plan solved = solve(members, demand);
      ObjectNode p = JSON.createObjectNode();
      p.put("revision", revision + 1);
      p.put("leader", config.getNodeId());
      p.put("at", Instant.now().toString());
      p.set("replicas", JSON.valueToTree(solved.replicas()));
      p.put("cost", solved.cost());
      p.put("note", solved.note());
      p.putArray("members").addAll(members.keySet().stream().map(JSON.getNodeFactory()::textNode).toList());
      // written only while this member's election key exists: a leader whose lease lapsed writes nothing
      boolean ok = keys.client().getKVClient().txn()
          .If(new Cmp(mine.getKey(), Cmp.Op.GREATER, CmpTarget.createRevision(0)))
          .Then(Op.put(keys.key("/plan"), ClusterKeys.bytes(p.toString()), PutOption.DEFAULT))
          .commit().get(3, TimeUnit.SECONDS).isSucceeded();
      if (!ok) {
        lostLeadership.accept("its election key is gone");
      } else {
        LOG.info(() -> "event=planned revision=" + (revision + 1) + " members=" + members.size() + " models="
            + demand.size());
      }
    } catch (Exception e) {
      LOG.log(Level.WARNING, "event=plan_failed cause=" + ClusterMember.rootCause(e));
    } catch (Error e) { // said, not thrown: a scheduled task that throws is never run again, and planning would stop
      LOG.log(Level.SEVERE, "event=plan_failed cause=" + e, e);
    }
  }

  /** Places the demanded replicas over the registered members with Thaw's solver. */
  static Plan solve(Map<String, Registration> members, Map<String, JsonNode> demand) {
    List<Node> nodes = new ArrayList<>();
    Map<String, Map<String, Integer>> running = new TreeMap<>();
    for (Registration m : members.values()) {
      Map<String, Double> cached = new HashMap<>();
      m.cached().forEach((model, fill) -> cached.put(model, Math.min(1, fill)));
      Registration.Bandwidth bw = m.bandwidth();
      nodes.add(new Node(m.node(), m.zone(), m.gpus().model(), m.gpus().count(), m.gpus().memoryBytes(),
          m.cacheBytes(), new Node.Bandwidth(bw.localDisk(), bw.peer(), bw.origin()), cached, Set.of()));
      m.running().forEach((model, replicas) -> {
        if (demand.containsKey(model)) {
          running.computeIfAbsent(model, k -> new TreeMap<>()).put(m.node(), replicas);
        }
      });
    }
    List<Model> models = new ArrayList<>();
    for (JsonNode d : demand.values()) {
      models.add(new Model(d.path("model").asText(), d.path("weight_bytes").asLong(), Map.of(), 1, 0,
          d.path("boot_seconds").asDouble(30), Set.of(), Model.Demand.ofReplicas(d.path("replicas").asInt())));
    }
    MipPlacement solver = new MipPlacement(MipPlacement.Options.DEFAULT);
    return solver.place(new Cluster(nodes, models, running));
  }
}
