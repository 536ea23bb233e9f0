package dev.thaw.sidecar.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.sidecar.MountService;
import dev.thaw.sidecar.SidecarConfig;
import dev.thaw.sidecar.peers.PeerServer;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.election.CampaignResponse;
import io.etcd.jetcd.lease.LeaseKeepAliveResponse;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.support.CloseableClient;
import io.etcd.jetcd.watch.WatchEvent;
import io.grpc.stub.StreamObserver;
import io.micronaut.context.annotation.Context;
import jakarta.annotation.PreDestroy;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * This sidecar as a member of a cluster coordinated through etcd ({@code thaw.cluster.etcd}); inert when standalone.
 *
 * <ul>
 *   <li>It registers under a lease ({@code PREFIX/members/NODE}: a {@link Registration}) and keeps the lease alive;
 *       the registration disappears a lease TTL after the member does.
 *   <li>Members campaign in an etcd election; the leader plans ({@link Planner}). Every member watches the plan and
 *       acts on it ({@link PlanFollower}), and watches the registrations, which its readers' peers are chosen from
 *       ({@link KnownMembers}); its peer endpoint serves its cache to the others ({@link PeerServer}).
 *   <li>A member whose keep-alives have gone unanswered for 60 % of the TTL stops acting as leader, before its lease
 *       can expire and another be elected.
 *   <li>etcd unreachable: mounts and restores carry on; the member reports itself degraded and registers and
 *       campaigns again with a new lease when etcd answers.
 * </ul>
 *
 * <p>What the API shows of the cluster ({@link #planView}, {@link #peers}, {@link #degraded}, demand) comes from here.
 */
@Context
public final class ClusterMember implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ClusterMember.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  private final ClusterConfig config;
  private final MountService mounts;
  private final SidecarConfig sidecar;
  private final SnapshotService snapshots;
  private final KnownMembers known;
  private final ScheduledExecutorService timer;
  private final ScheduledExecutorService watchdog; // its own thread: nothing that waits on etcd may delay a step-down
  private final Object lock = new Object();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final Client client;
  private final ClusterKeys keys;
  private final Planner planner;
  private final PlanFollower follower;
  private final PeerServer peerServer;
  private final String peerUrl;
  private volatile long leaseId;
  private volatile long lastAckNanos;
  private volatile long lastRegistered;
  private volatile boolean leader;
  private volatile String degraded; // null when etcd answers, else why not
  private CloseableClient keepAlive;
  private Watch.Watcher planWatch;
  private Watch.Watcher changeWatch;
  private long generation; // bumps with every new lease, so stale callbacks of an old one are ignored
  private Registration.Gpus gpus; // detected once

  ClusterMember(ClusterConfig config, MountService mounts, SidecarConfig sidecar, SnapshotService snapshots,
      KnownMembers known) {
    this.config = config;
    this.mounts = mounts;
    this.sidecar = sidecar;
    this.snapshots = snapshots;
    this.known = known;
    if (!config.enabled()) {
      timer = null;
      watchdog = null;
      client = null;
      keys = null;
      planner = null;
      follower = null;
      peerServer = null;
      peerUrl = null;
      return;
    }
    try {
      peerServer = new PeerServer(config.getPeerHost(), config.getPeerPort(), known.token(), mounts.cache(), mounts,
          config.getPeerTimeout());
    } catch (IOException | RuntimeException e) {
      // the sidecar cannot start: let go of what it opened already (the cache's lock), then say why
      try {
        mounts.close();
      } catch (IOException closing) {
        e.addSuppressed(closing);
      }
      throw e instanceof IOException ? new IllegalStateException("cannot open the peer endpoint on "
          + config.getPeerHost() + ":" + config.getPeerPort() + ": " + e.getMessage(), e) : (RuntimeException) e;
    }
    // reachable as the bind address when that is one; else by the node's name
    String host = config.getPeerHost().equals("0.0.0.0") || config.getPeerHost().equals("::") ? config.getNodeId()
        : config.getPeerHost();
    peerUrl = config.getPeerUrl() != null ? config.getPeerUrl() : "http://" + host + ":" + peerServer.port();
    timer = Executors.newScheduledThreadPool(2, r -> {
      Thread t = new Thread(r, "thaw-cluster");
      t.setDaemon(true);
      return t;
    });
    client = Client.builder().endpoints(config.getEtcd().toArray(String[]::new))
        .connectTimeout(Duration.ofSeconds(2)).build();
    keys = new ClusterKeys(client, config.getPrefix());
    planner = new Planner(config, keys, timer, this::stepDown);
    follower = new PlanFollower(config.getNodeId(), sidecar, mounts, snapshots, known, keys::demand, this::changed);
    watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "thaw-cluster-watchdog");
      t.setDaemon(true);
      return t;
    });
    degrade("joining");
    mounts.onMount(this::changed); // tell the others at once that this node is fetching the model
    timer.execute(this::join);
    long tick = Math.max(100, config.getLeaseTtl().toMillis() / 20);
    watchdog.scheduleWithFixedDelay(this::check, tick, tick, TimeUnit.MILLISECONDS);
  }

  private static void loadSolvers() {
    try {
      dev.thaw.placement.MipPlacement.loadSolvers();
    } catch (Throwable e) { // said, not thrown: planning reports it again, with its fallback, if this member leads
      LOG.log(Level.WARNING, "event=solver_unavailable cause=" + e);
    }
  }

  /** Whether this sidecar is in cluster mode at all. */
  public boolean clustered() {
    return config.enabled();
  }

  /** Whether this member leads now. */
  public boolean isLeader() {
    return leader;
  }

  /** Null while etcd answers; otherwise why this member is degraded. */
  public String degraded() {
    return config.enabled() ? degraded : null;
  }

  /** This member's node name. */
  public String nodeId() {
    return config.getNodeId();
  }

  /** The plan as the API shows it. */
  public Map<String, Object> planView() {
    Map<String, Object> v = new LinkedHashMap<>();
    if (!config.enabled()) {
      v.put("mode", "standalone");
      v.put("revision", 0);
      v.put("plan", null);
      v.put("note", "standalone: no cluster, so no plan; start with --etcd for cluster mode");
      return v;
    }
    JsonNode p = follower.plan();
    v.put("mode", "cluster");
    v.put("node", config.getNodeId());
    v.put("leader", leader);
    v.put("revision", p == null ? 0 : p.path("revision").asLong());
    v.put("plan", p);
    v.put("assigned", follower.assigned());
    v.put("acting", follower.acting());
    v.put("snapshots_ahead", follower.snapshotsAhead());
    return v;
  }

  /** The other members, by the registrations etcd holds now (empty when standalone or unreachable). */
  public List<String> peers() {
    if (!config.enabled() || degraded != null) {
      return List.of();
    }
    try {
      List<String> out = new ArrayList<>();
      for (Registration m : members().values()) {
        if (!m.node().equals(config.getNodeId())) {
          out.add(m.node());
        }
      }
      return out;
    } catch (Exception e) {
      return List.of();
    }
  }

  /** Sets how many replicas of {@code model} the cluster wants; the leader plans for it. */
  public void setDemand(String model, int replicas, long weightBytes, double bootSeconds) throws Exception {
    setDemand(model, replicas, weightBytes, bootSeconds, null);
  }

  /** As above, naming the snapshot its replicas restore from: the members it is assigned to fetch it ahead. */
  public void setDemand(String model, int replicas, long weightBytes, double bootSeconds, String snapshot)
      throws Exception {
    ObjectNode d = JSON.createObjectNode();
    d.put("model", model);
    d.put("replicas", replicas);
    d.put("weight_bytes", weightBytes);
    d.put("boot_seconds", bootSeconds);
    if (snapshot != null) {
      d.put("snapshot", snapshot);
    }
    client.getKVClient().put(keys.key("/demand/" + model), ClusterKeys.bytes(d.toString())).get(5, TimeUnit.SECONDS);
  }

  /** The demand the cluster holds, model to its entry. */
  public Map<String, JsonNode> demand() throws Exception {
    return keys.demand();
  }

  /**
   * How many members, this one included, are fetching a model, as this member last heard (for {@code thaw bench
   * cluster}, which waits for all to hear of each other).
   */
  public int fetchers(String digest) {
    return (int) known.members().values().stream().filter(m -> m.fetching().contains(digest)).count();
  }

  /** How much of a model another member holds, as this member last heard (0 to 1). */
  double heldBy(String node, String digest) {
    Registration m = known.members().get(node);
    return m == null ? 0 : m.held().getOrDefault(digest, 0.0);
  }

  /** This member's peer endpoint's port. */
  int peerPort() {
    return peerServer.port();
  }

  /** The registrations etcd holds now, node to registration. */
  Map<String, Registration> members() throws Exception {
    return keys.members();
  }

  // --- joining, keeping the lease, stepping down -------------------------------------------------------------------

  private void degrade(String why) {
    degraded = why;
    known.reachable(why == null);
  }

  private void join() {
    if (closed.get()) {
      return;
    }
    loadSolvers(); // before joining (once per JVM): any member may come to lead, and a leader's first plan would pay it
    long gen;
    try {
      long ttl = Math.max(2, config.getLeaseTtl().toSeconds());
      long id = client.getLeaseClient().grant(ttl).get(3, TimeUnit.SECONDS).getID();
      synchronized (lock) {
        gen = ++generation;
        leaseId = id;
        lastAckNanos = System.nanoTime();
        if (keepAlive != null) {
          keepAlive.close();
        }
        keepAlive = client.getLeaseClient().keepAlive(id, new StreamObserver<>() {
          @Override
          public void onNext(LeaseKeepAliveResponse r) {
            if (r.getID() == leaseId && r.getTTL() > 0) {
              lastAckNanos = System.nanoTime();
            }
          }

          @Override
          public void onError(Throwable t) {
            LOG.log(Level.FINE, "event=keepalive_error cause=" + t);
          }

          @Override
          public void onCompleted() {}
        });
      }
      register();
      keys.plan().ifPresent(follower::accept);
      watch(gen);
      degrade(null);
      LOG.info(() -> "event=joined node=" + config.getNodeId() + " lease=" + Long.toHexString(id));
      campaign(gen, id);
    } catch (Exception e) {
      degrade("etcd " + config.getEtcd() + " unreachable: " + rootCause(e));
      LOG.log(Level.WARNING, "event=join_failed endpoints=" + config.getEtcd() + " cause=" + rootCause(e)
          + " action=retry");
      if (!closed.get()) {
        timer.schedule(this::join, 1, TimeUnit.SECONDS);
      }
    }
  }

  /** Every tick: a lease gone quiet makes this member step down and, once etcd answers again, join afresh. */
  private void check() {
    if (closed.get() || leaseId == 0) {
      return;
    }
    long silent = System.nanoTime() - lastAckNanos;
    if (silent > config.getLeaseTtl().toNanos() * 6 / 10 && degraded == null) {
      stepDown("no keep-alive answered for " + silent / 1_000_000 + " ms");
      degrade("etcd " + config.getEtcd() + " unreachable: keep-alives unanswered for " + silent / 1_000_000 + " ms");
      synchronized (lock) {
        leaseId = 0;
        generation++;
        if (keepAlive != null) {
          keepAlive.close();
          keepAlive = null;
        }
        closeWatches();
      }
      timer.execute(this::join);
    } else if (degraded == null && System.nanoTime() - lastRegistered > config.getLeaseTtl().toNanos() / 3) {
      lastRegistered = System.nanoTime();
      timer.execute(() -> { // the inventory changes as mounts come and go and caches fill
        try {
          register();
        } catch (Exception e) {
          LOG.log(Level.FINE, "event=register_failed cause=" + rootCause(e));
        }
      });
    }
  }

  private void stepDown(String why) {
    synchronized (lock) {
      if (leader) {
        LOG.log(why.equals("closing") ? Level.INFO : Level.WARNING,
            () -> "event=step_down node=" + config.getNodeId() + " why=" + why);
      }
      leader = false;
      planner.stop();
    }
  }

  private void campaign(long gen, long lease) {
    CompletableFuture<CampaignResponse> elected = client.getElectionClient()
        .campaign(keys.key("/leader"), lease, ClusterKeys.bytes(config.getNodeId()));
    elected.whenComplete((r, e) -> {
      synchronized (lock) {
        if (e != null || gen != generation || closed.get()) {
          if (e != null && gen == generation && !closed.get()) {
            LOG.log(Level.FINE, "event=campaign_failed cause=" + rootCause(e) + " action=rejoin");
          }
          return;
        }
        leader = true;
        LOG.info(() -> "event=leader node=" + config.getNodeId());
        planner.lead(r.getLeader());
      }
    });
  }

  // --- registration, watches -----------------------------------------------------------------------------------------

  private void register() throws Exception {
    long id = leaseId;
    if (id == 0) {
      return;
    }
    String r = registration().toJson();
    // the lease keeps an unchanged registration alive: a put that changes nothing would only wake every watcher,
    // and the leader would plan again for nothing
    if (id == lastPut.lease() && r.equals(lastPut.value())) {
      return;
    }
    client.getKVClient().put(keys.key("/members/" + config.getNodeId()), ClusterKeys.bytes(r),
        PutOption.builder().withLeaseId(id).build()).get(3, TimeUnit.SECONDS);
    lastPut = new Put(id, r);
    known.update(keys.members());
  }

  private record Put(long lease, String value) {}

  private volatile Put lastPut = new Put(0, "");

  /** Tells the others now, not at the next refresh, what this node holds and fetches (a mount came or went). */
  void changed() {
    if (config.enabled() && !closed.get()) {
      timer.execute(() -> {
        try {
          register();
        } catch (Exception e) {
          LOG.log(Level.FINE, "event=register_failed cause=" + rootCause(e));
        }
      });
    }
  }

  private Registration registration() {
    List<Registration.SnapshotHeld> kept = new ArrayList<>(); // the snapshot keys held here: restores that are local
    try {
      for (var snap : snapshots.list()) {
        kept.add(new Registration.SnapshotHeld(snap.name(), snap.keyTag()));
      }
    } catch (IOException e) {
      LOG.log(Level.FINE, "event=snapshots_unreadable dir=" + sidecar.getSnapshots() + " cause=" + e.getMessage());
    }
    return Registration.of(config, gpus(), sidecar.getCacheMaxBytes() != null ? sidecar.getCacheMaxBytes() : 0L,
        peerUrl, mounts.mounted(), follower.prefetched(), kept);
  }

  /** This node's GPUs: as configured, else as nvidia-smi lists them, else none. */
  private synchronized Registration.Gpus gpus() {
    if (gpus == null) {
      gpus = Registration.Gpus.detect(config);
    }
    return gpus;
  }

  private void watch(long gen) {
    synchronized (lock) {
      closeWatches();
      WatchOption prefix = WatchOption.builder().isPrefix(true).build();
      planWatch = client.getWatchClient().watch(keys.key("/plan"), Watch.listener(r -> {
        r.getEvents().forEach(e -> {
          if (e.getEventType() == WatchEvent.EventType.PUT) {
            follower.accept(e.getKeyValue().getValue().toString(StandardCharsets.UTF_8));
          }
        });
      }, t -> LOG.log(Level.FINE, "event=plan_watch_error cause=" + t)));
      changeWatch = client.getWatchClient().watch(keys.key("/"), prefix, Watch.listener(r -> {
        boolean relevant = r.getEvents().stream().anyMatch(e -> {
          String k = e.getKeyValue().getKey().toString(StandardCharsets.UTF_8);
          return keys.isUnder(k, "/members/") || keys.isUnder(k, "/demand/");
        });
        if (relevant && gen == generation) {
          planner.planSoon();
          timer.execute(() -> {
            try {
              known.update(keys.members());
            } catch (Exception e) {
              LOG.log(Level.FINE, "event=members_refresh_failed cause=" + rootCause(e));
            }
          });
        }
      }, t -> LOG.log(Level.FINE, "event=change_watch_error cause=" + t)));
    }
  }

  private void closeWatches() {
    if (planWatch != null) {
      planWatch.close();
      planWatch = null;
    }
    if (changeWatch != null) {
      changeWatch.close();
      changeWatch = null;
    }
  }

  static String rootCause(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t.getClass().getSimpleName() + (t.getMessage() == null ? "" : ": " + t.getMessage());
  }

  /**
   * Leaves the cluster: resigns leadership and revokes the lease, so the registration goes at once. A process that
   * dies instead leaves it to the TTL.
   */
  @PreDestroy
  @Override
  public void close() {
    if (!config.enabled() || !closed.compareAndSet(false, true)) {
      return;
    }
    stepDown("closing");
    watchdog.shutdownNow();
    timer.shutdownNow();
    peerServer.close();
    synchronized (lock) {
      closeWatches();
      if (keepAlive != null) {
        keepAlive.close();
      }
    }
    try {
      if (leaseId != 0) {
        client.getLeaseClient().revoke(leaseId).get(2, TimeUnit.SECONDS);
      }
    } catch (Exception e) {
      LOG.log(Level.FINE, "event=revoke_failed cause=" + rootCause(e));
    }
    client.close();
  }

  /** Stops as a crashed member would: no resignation, no revoke; etcd forgets it a lease TTL later. */
  void crash() {
    if (!config.enabled() || !closed.compareAndSet(false, true)) {
      return;
    }
    watchdog.shutdownNow();
    timer.shutdownNow();
    peerServer.close();
    synchronized (lock) {
      leader = false;
      planner.stop();
      closeWatches();
      if (keepAlive != null) {
        keepAlive.close();
      }
    }
    client.close();
  }
}
