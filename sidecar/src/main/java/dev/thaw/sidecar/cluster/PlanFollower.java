package dev.thaw.sidecar.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.sidecar.MountService;
import dev.thaw.sidecar.SidecarConfig;
import dev.thaw.sidecar.peers.ChunkPeersFactory;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.ReaderOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * A member acting on the plan it last saw (every member does, the leader too). Every model the plan assigns to this
 * node is prefetched into the cache (from peers first), so the replica that comes starts from local bytes; a model
 * whose demand names a snapshot has that snapshot fetched ahead; a model no longer assigned goes first when the cache
 * needs room.
 */
final class PlanFollower {
  private static final Logger LOG = Logger.getLogger(PlanFollower.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What this member does about a model of the plan, and the manifest digest the model resolved to. */
  record Acting(String state, String digest) {}

  private final String nodeId;
  private final SidecarConfig sidecar;
  private final MountService mounts;
  private final SnapshotService snapshots;
  private final ChunkPeersFactory peers;
  private final Callable<Map<String, JsonNode>> demand;
  private final Runnable changed;
  private volatile JsonNode plan; // the last plan seen
  /** Model to what this member does about it. */
  private final Map<String, Acting> acting = new ConcurrentHashMap<>();
  /** The snapshots this member fetched ahead for the plan: snapshot name to what happened. */
  private final Map<String, String> snapshotsAhead = new ConcurrentHashMap<>();

  /**
   * Follows the plan for node {@code nodeId}: prefetches through {@code mounts}' cache asking {@code peers}, reads the
   * snapshot names from {@code demand}, and calls {@code changed} when what this node holds changed.
   */
  PlanFollower(String nodeId, SidecarConfig sidecar, MountService mounts, SnapshotService snapshots,
      ChunkPeersFactory peers, Callable<Map<String, JsonNode>> demand, Runnable changed) {
    this.nodeId = nodeId;
    this.sidecar = sidecar;
    this.mounts = mounts;
    this.snapshots = snapshots;
    this.peers = peers;
    this.demand = demand;
    this.changed = changed;
  }

  /** A plan as etcd holds it: acted on when its revision is above the last one's. */
  void accept(String json) {
    try {
      JsonNode p = JSON.readTree(json);
      JsonNode old = plan;
      if (old == null || p.path("revision").asLong() > old.path("revision").asLong()) {
        plan = p;
        act(p);
      }
    } catch (Exception e) {
      LOG.warning("event=plan_unreadable cause=" + e.getMessage());
    }
  }

  /** The last plan seen; null before the first. */
  JsonNode plan() {
    return plan;
  }

  /** What the last plan assigns here, model to replicas. */
  Map<String, Object> assigned() {
    JsonNode p = plan;
    return p == null ? Map.of() : assignedHere(p);
  }

  /** Model to what this member does about it. */
  Map<String, String> acting() {
    Map<String, String> doing = new TreeMap<>();
    acting.forEach((m, a) -> doing.put(m, a.state()));
    return doing;
  }

  /** Snapshot name to what fetching it ahead came to. */
  Map<String, String> snapshotsAhead() {
    return new TreeMap<>(snapshotsAhead);
  }

  /** The models the plan made this node fetch whole: model to manifest digest (peers may ask for them). */
  Map<String, String> prefetched() {
    Map<String, String> out = new TreeMap<>();
    acting.forEach((model, a) -> {
      if (a.state().equals("prefetched") && a.digest() != null) {
        out.put(model, a.digest());
      }
    });
    return out;
  }

  /**
   * Acts on a plan. A model already prefetched, or on its way, is left alone; one that failed is tried again with the
   * next plan.
   */
  private void act(JsonNode p) {
    Map<String, Object> assigned = assignedHere(p);
    acting.forEach((model, a) -> {
      if (!assigned.containsKey(model) && a.state().equals("prefetched")) {
        acting.put(model, new Acting("unassigned", a.digest()));
        Thread.ofVirtual().name("thaw-release-" + model).start(() -> release(model, a.digest()));
      }
    });
    if (!assigned.isEmpty()) {
      Thread.ofVirtual().name("thaw-snapshots-ahead").start(() -> fetchSnapshotsAhead(assigned.keySet()));
    }
    for (String model : assigned.keySet()) {
      Acting a = acting.get(model);
      if (a != null && !a.state().startsWith("failed")) {
        continue;
      }
      acting.put(model, new Acting("prefetching", null));
      Thread.ofVirtual().name("thaw-prefetch-" + model).start(() -> prefetch(model));
    }
  }

  private void prefetch(String model) {
    try (Origin o = Origins.open(sidecar.getOrigin())) {
      Manifest m = new ModelStore(o).resolve(ModelName.parse(model));
      acting.put(model, new Acting("prefetching", m.digest()));
      try (ModelReader r = ModelReader.open(m, o, mounts.cache(),
          ReaderOptions.DEFAULT.withParallelism(sidecar.getParallelism()).withRecordProfile(false))) {
        peers.forModel(m.digest()).ifPresent(r::usePeers);
        r.fillAll().get(1, TimeUnit.HOURS);
      }
      acting.put(model, new Acting("prefetched", m.digest()));
      LOG.info(() -> "event=prefetched model=" + model + " node=" + nodeId);
      changed.run();
    } catch (Exception e) {
      acting.put(model, new Acting("failed: " + ClusterMember.rootCause(e), null));
      LOG.warning(() -> "event=prefetch_failed model=" + model + " origin=" + sidecar.getOrigin() + " cause="
          + ClusterMember.rootCause(e));
    }
  }

  /**
   * For each assigned model whose demand names a snapshot, fetches the snapshot whose key matches this node into its
   * snapshots directory, so the replica restores from local images. A snapshot here already, or being fetched, is
   * left alone; one that failed (no key match, no snapshot key) is tried again with the next plan.
   */
  private void fetchSnapshotsAhead(Set<String> models) {
    Map<String, JsonNode> wanted;
    try {
      wanted = demand.call();
    } catch (Exception e) {
      return; // the next plan tries again
    }
    for (String model : models) {
      String name = wanted.containsKey(model) ? wanted.get(model).path("snapshot").asText(null) : null;
      if (name == null || (snapshotsAhead.containsKey(name) && !snapshotsAhead.get(name).startsWith("failed"))) {
        continue;
      }
      snapshotsAhead.put(name, "fetching");
      try {
        var found = snapshots.fetchAhead(name);
        snapshotsAhead.put(name, found.fetched() ? "fetched" : "here");
        LOG.info(() -> "event=snapshot_ahead name=" + name + " node=" + nodeId + " bytes=" + found.bytesFetched());
        changed.run();
      } catch (Exception e) {
        snapshotsAhead.put(name, "failed: " + ClusterMember.rootCause(e));
        LOG.warning(() -> "event=snapshot_ahead_failed name=" + name + " cause=" + ClusterMember.rootCause(e));
      }
    }
  }

  /**
   * A model the plan no longer assigns here: its chunks go first when the cache needs room (nothing is deleted
   * before), unless a mount still reads it.
   */
  private void release(String model, String digest) {
    boolean mounted = mounts.mounted().stream().anyMatch(m -> digest.equals(m.digest()));
    if (mounted) {
      acting.put(model, new Acting("unassigned, still mounted", digest));
      return;
    }
    try (Origin o = Origins.open(sidecar.getOrigin())) {
      Manifest m = new ModelStore(o).load(digest);
      List<String> keys = new ArrayList<>();
      for (FileEntry f : m.files()) {
        f.chunks().forEach(c -> keys.add(c.key()));
      }
      int held = mounts.cache().evictFirst(keys);
      acting.put(model, new Acting("unassigned, first to evict", digest));
      LOG.info(() -> "event=released model=" + model + " chunks=" + held);
      changed.run();
    } catch (Exception e) {
      acting.put(model, new Acting("unassigned: " + ClusterMember.rootCause(e), digest));
    }
  }

  private Map<String, Object> assignedHere(JsonNode p) {
    Map<String, Object> out = new TreeMap<>();
    p.path("replicas").properties().forEach(e -> {
      JsonNode n = e.getValue().path(nodeId);
      if (n.isInt() && n.asInt() > 0) {
        out.put(e.getKey(), n.asInt());
      }
    });
    return out;
  }
}
