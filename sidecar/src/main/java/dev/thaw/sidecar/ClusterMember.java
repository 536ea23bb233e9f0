package dev.thaw.sidecar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.checkpoint.SnapshotService;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.CostModel;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Model;
import dev.thaw.placement.Node;
import dev.thaw.placement.Plan;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.election.LeaderKey;
import io.etcd.jetcd.lease.LeaseKeepAliveResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.support.CloseableClient;
import io.grpc.stub.StreamObserver;
import io.micronaut.context.annotation.Context;
import jakarta.annotation.PreDestroy;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * This sidecar as a member of a cluster coordinated through etcd ({@code thaw.cluster.etcd}); inert when standalone.
 *
 * <ul>
 *   <li>It registers under a lease ({@code PREFIX/members/NODE}: node facts, inventory, running replicas) and keeps
 *       the lease alive; the registration disappears a lease TTL after the member does.
 *   <li>Members campaign in an etcd election; the leader plans ({@code placement/}) on changes to members or demand
 *       (debounced) and on a timer, and writes {@code PREFIX/plan} with a revision one above the last, in a
 *       transaction that succeeds only while its election key (bound to its lease) exists.
 *   <li>Every member watches the plan. A member whose keep-alives have gone unanswered for 60 % of the TTL stops
 *       acting as leader, before its lease can expire and another be elected.
 *   <li>etcd unreachable: mounts and restores carry on; the member reports itself degraded and registers and
 *       campaigns again with a new lease when etcd answers.
 * </ul>
 */
@Context
public final class ClusterMember implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ClusterMember.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  private final ClusterConfig config;
  private final MountService mounts;
  private final SidecarConfig sidecar;
  private final SnapshotService snapshots;
  private final ScheduledExecutorService timer;
  private final ScheduledExecutorService watchdog; // its own thread: nothing that waits on etcd may delay a step-down
  private final Object lock = new Object();
  private final AtomicBoolean closed = new AtomicBoolean();
  private Client client;
  private volatile long leaseId;
  private volatile long lastAckNanos;
  private volatile boolean leader;
  private volatile LeaderKey leaderKey;
  private volatile String degraded; // null when etcd answers, else why not
  private volatile JsonNode plan; // the last plan seen
  private CloseableClient keepAlive;
  private Watch.Watcher planWatch;
  private Watch.Watcher changeWatch;
  private ScheduledFuture<?> pendingPlan;
  private ScheduledFuture<?> periodicPlan;
  private long generation; // bumps with every new lease, so stale callbacks of an old one are ignored
  private final PeerServer peerServer;
  private final String token;
  private final String peerUrl;
  private volatile Map<String, JsonNode> knownMembers = Map.of(); // as last read, for choosing peers per chunk
  /** What this member does about the plan: model to its prefetch, and the digest it resolved to. */
  private final Map<String, Acting> acting = new java.util.concurrent.ConcurrentHashMap<>();

  record Acting(String state, String digest) {}

  /** The snapshots this member fetched ahead for the plan: snapshot name to what happened. */
  private final Map<String, String> snapshotsAhead = new java.util.concurrent.ConcurrentHashMap<>();

  ClusterMember(ClusterConfig config, MountService mounts, SidecarConfig sidecar,
      SnapshotService snapshots) {
    this.config = config;
    this.mounts = mounts;
    this.sidecar = sidecar;
    this.snapshots = snapshots;
    if (!config.enabled()) {
      timer = null;
      watchdog = null;
      peerServer = null;
      token = null;
      peerUrl = null;
      return;
    }
    try {
      token = config.resolveToken();
      peerServer = new PeerServer(config.getPeerHost(), config.getPeerPort(), token, mounts.cache(),
          key -> mounts.fetchForPeer(key, config.getPeerTimeout()));
    } catch (java.io.IOException | RuntimeException e) {
      // the sidecar cannot start: let go of what it opened already (the cache's lock), then say why
      try {
        mounts.close();
      } catch (java.io.IOException closing) {
        e.addSuppressed(closing);
      }
      throw e instanceof java.io.IOException ? new IllegalStateException("cannot open the peer endpoint on "
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
    watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "thaw-cluster-watchdog");
      t.setDaemon(true);
      return t;
    });
    degraded = "joining";
    timer.execute(this::join);
    long tick = Math.max(100, config.getLeaseTtl().toMillis() / 20);
    watchdog.scheduleWithFixedDelay(this::check, tick, tick, TimeUnit.MILLISECONDS);
  }

  public boolean clustered() {
    return config.enabled();
  }

  public boolean isLeader() {
    return leader;
  }

  /** Null while etcd answers; otherwise why this member is degraded. */
  public String degraded() {
    return config.enabled() ? degraded : null;
  }

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
    JsonNode p = plan;
    v.put("mode", "cluster");
    v.put("node", config.getNodeId());
    v.put("leader", leader);
    v.put("revision", p == null ? 0 : p.path("revision").asLong());
    v.put("plan", p);
    v.put("assigned", p == null ? Map.of() : assignedHere(p));
    Map<String, String> doing = new TreeMap<>();
    acting.forEach((m, a) -> doing.put(m, a.state()));
    v.put("acting", doing);
    v.put("snapshots_ahead", new TreeMap<>(snapshotsAhead));
    return v;
  }

  /** The other members, by the registrations etcd holds now (empty when standalone or unreachable). */
  public List<String> peers() {
    if (!config.enabled() || degraded != null) {
      return List.of();
    }
    try {
      List<String> out = new ArrayList<>();
      for (JsonNode m : members().values()) {
        if (!m.path("node").asText().equals(config.getNodeId())) {
          out.add(m.path("node").asText());
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
    client.getKVClient().put(key("/demand/" + model), bytes(d.toString())).get(5, TimeUnit.SECONDS);
  }

  /** The demand the cluster holds, model to its entry. */
  public Map<String, JsonNode> demand() throws Exception {
    return prefixed("/demand/");
  }

  // --- joining, keeping the lease, stepping down -------------------------------------------------------------------

  private void join() {
    if (closed.get()) {
      return;
    }
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
      readPlan();
      watch(gen);
      degraded = null;
      LOG.info(() -> "event=joined node=" + config.getNodeId() + " lease=" + Long.toHexString(id));
      campaign(gen, id);
    } catch (Exception e) {
      degraded = "etcd " + config.getEtcd() + " unreachable: " + rootCause(e);
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
      degraded = "etcd " + config.getEtcd() + " unreachable: keep-alives unanswered for " + silent / 1_000_000 + " ms";
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

  private volatile long lastRegistered;

  private void stepDown(String why) {
    synchronized (lock) {
      if (leader) {
        LOG.log(why.equals("closing") ? Level.INFO : Level.WARNING,
            () -> "event=step_down node=" + config.getNodeId() + " why=" + why);
      }
      leader = false;
      leaderKey = null;
      if (periodicPlan != null) {
        periodicPlan.cancel(false);
        periodicPlan = null;
      }
      if (pendingPlan != null) {
        pendingPlan.cancel(false);
        pendingPlan = null;
      }
    }
  }

  private void campaign(long gen, long lease) {
    CompletableFuture<io.etcd.jetcd.election.CampaignResponse> elected = client.getElectionClient()
        .campaign(key("/leader"), lease, bytes(config.getNodeId()));
    elected.whenComplete((r, e) -> {
      synchronized (lock) {
        if (e != null || gen != generation || closed.get()) {
          if (e != null && gen == generation && !closed.get()) {
            LOG.log(Level.FINE, "event=campaign_failed cause=" + rootCause(e) + " action=rejoin");
          }
          return;
        }
        leader = true;
        leaderKey = r.getLeader();
        LOG.info(() -> "event=leader node=" + config.getNodeId());
        long every = Math.max(1000, config.getReplanInterval().toMillis());
        periodicPlan = timer.scheduleWithFixedDelay(this::planNow, 0, every, TimeUnit.MILLISECONDS);
      }
    });
  }

  // --- registration, watches, the plan -----------------------------------------------------------------------------

  private void register() throws Exception {
    long id = leaseId;
    if (id == 0) {
      return;
    }
    String r = registration().toString();
    // the lease keeps an unchanged registration alive: a put that changes nothing would only wake every watcher,
    // and the leader would plan again for nothing
    if (id == lastPut.lease() && r.equals(lastPut.value())) {
      return;
    }
    client.getKVClient().put(key("/members/" + config.getNodeId()), bytes(r),
        PutOption.builder().withLeaseId(id).build()).get(3, TimeUnit.SECONDS);
    lastPut = new Put(id, r);
    knownMembers = members();
  }

  private record Put(long lease, String value) {}

  private volatile Put lastPut = new Put(0, "");

  /** The peers to ask for a model's chunks: the other members holding any of it, the fullest first. */
  ChunkPeersSource peersFor(String digest) {
    return new ChunkPeersSource(digest);
  }

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

  /**
   * Chunks of one model from the other members, chosen afresh for each chunk from the latest registrations: first a
   * member holding all of the model; else the chunk's owner among the members fetching the model (rendezvous
   * hashing: each chunk one owner, which fetches it from the origin for all), unless that is this node; then any
   * member holding part of it (registrations can be a moment old). None: the origin.
   */
  final class ChunkPeersSource implements dev.thaw.store.ChunkPeers {
    private final String digest;
    private final PeerClient client;

    ChunkPeersSource(String digest) {
      this.digest = digest;
      this.client = new PeerClient(token, config.getPeerTimeout());
    }

    @Override
    public boolean read(dev.thaw.store.ChunkRef chunk, java.nio.ByteBuffer into) {
      if (degraded != null) {
        return false;
      }
      List<JsonNode> others = knownMembers.values().stream()
          .filter(m -> !m.path("node").asText().equals(config.getNodeId()) && m.hasNonNull("peer_url")).toList();
      for (JsonNode m : others) {
        if (m.path("held").path(digest).asDouble() >= 1.0 && client.readFrom(m.path("peer_url").asText(), chunk, into,
            false)) {
          return true;
        }
      }
      String owner = config.getNodeId();
      String ownerUrl = null;
      long best = score(owner, chunk.key());
      for (JsonNode m : others) {
        if (m.path("fetching").path(digest).asBoolean(false)) {
          long s = score(m.path("node").asText(), chunk.key());
          if (s > best) {
            best = s;
            owner = m.path("node").asText();
            ownerUrl = m.path("peer_url").asText();
          }
        }
      }
      if (ownerUrl != null) {
        if (client.readFrom(ownerUrl, chunk, into, true)) {
          return true;
        }
        LOG.info("event=owner_failed owner=" + owner + " chunk=" + chunk.key() + " action=holders_then_origin");
      }
      // this node owns the chunk, or its owner failed: a member holding part of the model may have it (a 404 is
      // cheap), else the origin, once, for everyone
      for (JsonNode m : others) {
        double held = m.path("held").path(digest).asDouble();
        if (held > 0 && held < 1.0 && !m.path("node").asText().equals(owner)
            && client.readFrom(m.path("peer_url").asText(), chunk, into, false)) {
          return true;
        }
      }
      return false;
    }
  }

  /** Rendezvous hashing: the member with the highest score for a chunk owns it. */
  private static long score(String node, String chunkKey) {
    byte[] h = dev.thaw.store.Hashes.newDigest().digest((node + "\n" + chunkKey).getBytes(StandardCharsets.UTF_8));
    return java.nio.ByteBuffer.wrap(h).getLong();
  }

  /**
   * How many members, this one included, are fetching a model, as this member last heard (public for {@code thaw
   * bench cluster}, which waits for all to hear of each other).
   */
  public int fetchers(String digest) {
    return (int) knownMembers.values().stream().filter(m -> m.path("fetching").path(digest).asBoolean(false)).count();
  }

  /** How much of a model another member holds, as this member last heard (0 to 1). */
  double heldBy(String node, String digest) {
    JsonNode m = knownMembers.get(node);
    return m == null ? 0 : m.path("held").path(digest).asDouble();
  }

  /** This member's peer endpoint's port. */
  int peerPort() {
    return peerServer.port();
  }

  private ObjectNode registration() {
    ObjectNode r = JSON.createObjectNode();
    r.put("node", config.getNodeId());
    r.put("zone", config.getZone());
    Gpus g = gpus();
    r.put("gpu_model", g.model());
    r.put("gpu_count", g.count());
    r.put("gpu_memory_bytes", g.memoryBytes());
    r.put("cache_bytes", sidecar.getCacheMaxBytes() != null ? sidecar.getCacheMaxBytes() : 0L);
    r.put("peer_url", peerUrl);
    ObjectNode bw = r.putObject("bandwidth");
    bw.put("local_disk", config.getDiskBytesPerSecond());
    bw.put("peer", config.getPeerBytesPerSecond());
    bw.put("origin", config.getOriginBytesPerSecond());
    ObjectNode cached = r.putObject("cached");
    ObjectNode held = r.putObject("held"); // by manifest digest: what peers ask for
    ObjectNode fetching = r.putObject("fetching"); // models this node is still filling: it owns some of their chunks
    ObjectNode running = r.putObject("running");
    for (MountService.MountInfo m : mounts.mounted()) {
      String source = m.source();
      double fill = m.cacheFill();
      cached.put(source, fill);
      held.put(m.digest(), Math.max(fill, held.path(m.digest()).asDouble()));
      if (fill < 1) {
        fetching.put(m.digest(), true);
      }
      running.put(source, running.path(source).asInt() + 1);
    }
    acting.forEach((model, a) -> {
      if (a.state().equals("prefetched") && a.digest() != null) {
        held.put(a.digest(), 1.0); // what the plan made this node fetch, peers may ask for
        cached.put(model, 1.0);
      }
    });
    var snaps = r.putArray("snapshots"); // the snapshot keys held here: where a restore is a local one
    try {
      for (var snap : snapshots.list()) {
        snaps.addObject().put("name", snap.name()).put("key", snap.keyTag());
      }
    } catch (java.io.IOException e) {
      LOG.log(Level.FINE, "event=snapshots_unreadable dir=" + sidecar.getSnapshots() + " cause=" + e.getMessage());
    }
    return r;
  }

  record Gpus(String model, int count, long memoryBytes) {}

  private Gpus detected;

  /** This node's GPUs: as configured, else as nvidia-smi lists them, else none. */
  private synchronized Gpus gpus() {
    if (detected == null) {
      Gpus seen = new Gpus("none", 0, 0);
      try {
        Process p = new ProcessBuilder("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits")
            .redirectErrorStream(true).start();
        List<String> lines = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines()
            .filter(l -> l.contains(",")).toList();
        if (p.waitFor(5, TimeUnit.SECONDS) && p.exitValue() == 0 && !lines.isEmpty()) {
          String[] f = lines.getFirst().split(",");
          seen = new Gpus(f[0].strip(), lines.size(), Long.parseLong(f[1].strip()) << 20);
        }
      } catch (Exception e) {
        // no nvidia-smi: a node without GPUs, unless configured
      }
      detected = new Gpus(config.getGpuModel() != null ? config.getGpuModel() : seen.model(),
          config.getGpuCount() != null ? config.getGpuCount() : seen.count(),
          config.getGpuMemoryBytes() != null ? config.getGpuMemoryBytes() : seen.memoryBytes());
    }
    return detected;
  }

  private void watch(long gen) {
    synchronized (lock) {
      closeWatches();
      WatchOption prefix = WatchOption.builder().isPrefix(true).build();
      planWatch = client.getWatchClient().watch(key("/plan"), Watch.listener(r -> {
        r.getEvents().forEach(e -> {
          if (e.getEventType() == io.etcd.jetcd.watch.WatchEvent.EventType.PUT) {
            accept(e.getKeyValue());
          }
        });
      }, t -> LOG.log(Level.FINE, "event=plan_watch_error cause=" + t)));
      changeWatch = client.getWatchClient().watch(key("/"), prefix, Watch.listener(r -> {
        boolean relevant = r.getEvents().stream().anyMatch(e -> {
          String k = e.getKeyValue().getKey().toString(StandardCharsets.UTF_8);
          return k.startsWith(config.getPrefix() + "/members/") || k.startsWith(config.getPrefix() + "/demand/");
        });
        if (relevant && gen == generation) {
          planSoon();
          timer.execute(() -> {
            try {
              knownMembers = members();
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

  private void readPlan() throws Exception {
    List<KeyValue> kvs = client.getKVClient().get(key("/plan")).get(3, TimeUnit.SECONDS).getKvs();
    if (!kvs.isEmpty()) {
      accept(kvs.getFirst());
    }
  }

  private void accept(KeyValue kv) {
    try {
      JsonNode p = JSON.readTree(kv.getValue().toString(StandardCharsets.UTF_8));
      JsonNode old = plan;
      if (old == null || p.path("revision").asLong() > old.path("revision").asLong()) {
        plan = p;
        act(p);
      }
    } catch (Exception e) {
      LOG.warning("event=plan_unreadable cause=" + e.getMessage());
    }
  }

  /**
   * Acts on a plan: every model it assigns to this node is prefetched into the cache (from peers first), so the
   * replica that comes starts from local bytes. A model already prefetched, or on its way, is left alone; one that
   * failed is tried again with the next plan.
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
      Thread.ofVirtual().name("thaw-snapshots-ahead").start(() -> snapshotsAhead(assigned.keySet()));
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
    try (dev.thaw.store.Origin o = dev.thaw.store.Origins.open(sidecar.getOrigin())) {
      dev.thaw.store.Manifest m = new dev.thaw.store.ModelStore(o).resolve(dev.thaw.store.ModelName.parse(model));
      acting.put(model, new Acting("prefetching", m.digest()));
      try (dev.thaw.store.ModelReader r = dev.thaw.store.ModelReader.open(m, o, mounts.cache(),
          dev.thaw.store.ReaderOptions.DEFAULT.withParallelism(sidecar.getParallelism()).withRecordProfile(false))) {
        r.usePeers(peersFor(m.digest()));
        r.fillAll().get(1, TimeUnit.HOURS);
      }
      acting.put(model, new Acting("prefetched", m.digest()));
      LOG.info(() -> "event=prefetched model=" + model + " node=" + config.getNodeId());
      changed();
    } catch (Exception e) {
      acting.put(model, new Acting("failed: " + rootCause(e), null));
      LOG.warning(() -> "event=prefetch_failed model=" + model + " origin=" + sidecar.getOrigin() + " cause="
          + rootCause(e));
    }
  }

  /**
   * For each assigned model whose demand names a snapshot, fetches the snapshot whose key matches this node into its
   * snapshots directory, so the replica restores from local images. A snapshot here already, or being fetched, is
   * left alone; one that failed (no key match, no snapshot key) is tried again with the next plan.
   */
  private void snapshotsAhead(java.util.Set<String> models) {
    Map<String, JsonNode> demand;
    try {
      demand = demand();
    } catch (Exception e) {
      return; // the next plan tries again
    }
    for (String model : models) {
      String name = demand.containsKey(model) ? demand.get(model).path("snapshot").asText(null) : null;
      if (name == null || (snapshotsAhead.containsKey(name) && !snapshotsAhead.get(name).startsWith("failed"))) {
        continue;
      }
      snapshotsAhead.put(name, "fetching");
      try {
        var found = snapshots.fetchAhead(name);
        snapshotsAhead.put(name, found.fetched() ? "fetched" : "here");
        LOG.info(() -> "event=snapshot_ahead name=" + name + " node=" + config.getNodeId() + " bytes="
            + found.bytesFetched());
        changed();
      } catch (Exception e) {
        snapshotsAhead.put(name, "failed: " + rootCause(e));
        LOG.warning(() -> "event=snapshot_ahead_failed name=" + name + " cause=" + rootCause(e));
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
    try (dev.thaw.store.Origin o = dev.thaw.store.Origins.open(sidecar.getOrigin())) {
      dev.thaw.store.Manifest m = new dev.thaw.store.ModelStore(o).load(digest);
      List<String> keys = new ArrayList<>();
      for (dev.thaw.store.FileEntry f : m.files()) {
        f.chunks().forEach(c -> keys.add(c.key()));
      }
      int held = mounts.cache().evictFirst(keys);
      acting.put(model, new Acting("unassigned, first to evict", digest));
      LOG.info(() -> "event=released model=" + model + " chunks=" + held);
      changed();
    } catch (Exception e) {
      acting.put(model, new Acting("unassigned: " + rootCause(e), digest));
    }
  }

  /** A change: plan once things have been quiet for the debounce. */
  private void planSoon() {
    synchronized (lock) {
      if (!leader || closed.get()) {
        return;
      }
      if (pendingPlan != null) {
        pendingPlan.cancel(false);
      }
      pendingPlan = timer.schedule(this::planNow, config.getDebounce().toMillis(), TimeUnit.MILLISECONDS);
    }
  }

  private void planNow() {
    LeaderKey mine = leaderKey;
    if (!leader || mine == null || closed.get()) {
      return;
    }
    try {
      Map<String, JsonNode> members = members();
      Map<String, JsonNode> demand = demand();
      List<KeyValue> current = client.getKVClient().get(key("/plan")).get(3, TimeUnit.SECONDS).getKvs();
      long revision = current.isEmpty() ? 0
          : JSON.readTree(current.getFirst().getValue().toString(StandardCharsets.UTF_8)).path("revision").asLong();
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
      boolean ok = client.getKVClient().txn()
          .If(new Cmp(mine.getKey(), Cmp.Op.GREATER, CmpTarget.createRevision(0)))
          .Then(Op.put(key("/plan"), bytes(p.toString()), PutOption.DEFAULT))
          .commit().get(3, TimeUnit.SECONDS).isSucceeded();
      if (!ok) {
        stepDown("its election key is gone");
      } else {
        LOG.info(() -> "event=planned revision=" + (revision + 1) + " members=" + members.size() + " models="
            + demand.size());
      }
    } catch (Exception e) {
      LOG.log(Level.WARNING, "event=plan_failed cause=" + rootCause(e));
    }
  }

  /** Places the demanded replicas over the registered members with Thaw's solver. */
  static Plan solve(Map<String, JsonNode> members, Map<String, JsonNode> demand) {
    List<Node> nodes = new ArrayList<>();
    Map<String, Map<String, Integer>> running = new TreeMap<>();
    for (JsonNode m : members.values()) {
      Map<String, Double> cached = new HashMap<>();
      m.path("cached").properties().forEach(e -> cached.put(e.getKey(), Math.min(1, e.getValue().asDouble())));
      JsonNode bw = m.path("bandwidth");
      String id = m.path("node").asText();
      nodes.add(new Node(id, m.path("zone").asText("default"), m.path("gpu_model").asText("none"),
          m.path("gpu_count").asInt(), m.path("gpu_memory_bytes").asLong(), m.path("cache_bytes").asLong(),
          new Node.Bandwidth(bw.path("local_disk").asDouble(2e9), bw.path("peer").asDouble(1.25e9),
              bw.path("origin").asDouble(0.2e9)), cached, Set.of()));
      m.path("running").properties().forEach(e -> {
        if (demand.containsKey(e.getKey())) {
          running.computeIfAbsent(e.getKey(), k -> new TreeMap<>()).put(id, e.getValue().asInt());
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

  private Map<String, Object> assignedHere(JsonNode p) {
    Map<String, Object> out = new TreeMap<>();
    p.path("replicas").properties().forEach(e -> {
      JsonNode n = e.getValue().path(config.getNodeId());
      if (n.isInt() && n.asInt() > 0) {
        out.put(e.getKey(), n.asInt());
      }
    });
    return out;
  }

  Map<String, JsonNode> members() throws Exception {
    return prefixed("/members/");
  }

  private Map<String, JsonNode> prefixed(String sub) throws Exception {
    Map<String, JsonNode> out = new TreeMap<>();
    for (KeyValue kv : client.getKVClient().get(key(sub), GetOption.builder().isPrefix(true).build())
        .get(3, TimeUnit.SECONDS).getKvs()) {
      out.put(kv.getKey().toString(StandardCharsets.UTF_8).substring((config.getPrefix() + sub).length()),
          JSON.readTree(kv.getValue().toString(StandardCharsets.UTF_8)));
    }
    return out;
  }

  private ByteSequence key(String sub) {
    return bytes(config.getPrefix() + sub);
  }

  private static ByteSequence bytes(String s) {
    return ByteSequence.from(s, StandardCharsets.UTF_8);
  }

  private static String rootCause(Throwable e) {
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
      closeWatches();
      if (keepAlive != null) {
        keepAlive.close();
      }
    }
    client.close();
  }
}
