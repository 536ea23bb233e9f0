package dev.thaw.sidecar.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.sidecar.MountService;
import dev.thaw.sidecar.peers.Peer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * What a member registers under {@code PREFIX/members/NODE} while its lease lives: the node's facts (zone, GPUs, cache
 * size, bandwidths, peer endpoint) and its inventory (models cached by source, held by manifest digest, still being
 * fetched, replicas running, snapshot keys held). The leader plans from these; the owner rule reads them as
 * {@link Peer}s. In etcd it is JSON with snake_case fields; a field missing there reads as its default.
 *
 * @param cached by model source: the share of it in the cache, 0 to 1
 * @param held by manifest digest: the share of it in the cache, 0 to 1 (what peers ask for)
 * @param fetching manifest digests of models this node is still filling: it owns some of their chunks
 * @param running by model source: replicas (mounts) running here
 */
public record Registration(String node, String zone, Gpus gpus, long cacheBytes, String peerUrl, Bandwidth bandwidth,
    Map<String, Double> cached, Map<String, Double> held, Set<String> fetching, Map<String, Integer> running,
    List<SnapshotHeld> snapshots) {
  private static final ObjectMapper JSON = new ObjectMapper();

  public Registration {
    cached = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(cached));
    held = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(held));
    fetching = java.util.Collections.unmodifiableSet(new LinkedHashSet<>(fetching));
    running = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(running));
    snapshots = List.copyOf(snapshots);
  }

  /** A node's GPUs: their model (none without), how many, and each one's memory. */
  public record Gpus(String model, int count, long memoryBytes) {
    /** As configured, each fact that is not read from nvidia-smi, and without nvidia-smi none. */
    static Gpus detect(ClusterConfig config) {
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
      return new Gpus(config.getGpuModel() != null ? config.getGpuModel() : seen.model(),
          config.getGpuCount() != null ? config.getGpuCount() : seen.count(),
          config.getGpuMemoryBytes() != null ? config.getGpuMemoryBytes() : seen.memoryBytes());
    }
  }

  /** Bytes per second from the local disk, from peers and from the origin: the solver's start costs. */
  public record Bandwidth(double localDisk, double peer, double origin) {}

  /** A snapshot kept on this node, with the key it was taken for: where a restore is a local one. */
  public record SnapshotHeld(String name, String key) {}

  /**
   * This node's registration now: its facts, what its mounts hold and run, the models the plan made it fetch
   * ({@code prefetched}: model source to manifest digest), and the snapshots it keeps.
   */
  static Registration of(ClusterConfig config, Gpus gpus, long cacheBytes, String peerUrl,
      List<MountService.MountInfo> mounts, Map<String, String> prefetched, List<SnapshotHeld> snapshots) {
    Map<String, Double> cached = new LinkedHashMap<>();
    Map<String, Double> held = new LinkedHashMap<>();
    Set<String> fetching = new LinkedHashSet<>();
    Map<String, Integer> running = new LinkedHashMap<>();
    for (MountService.MountInfo m : mounts) {
      double fill = m.cacheFill();
      cached.put(m.source(), fill);
      held.put(m.digest(), Math.max(fill, held.getOrDefault(m.digest(), 0.0)));
      if (fill < 1) {
        fetching.add(m.digest());
      }
      running.merge(m.source(), 1, Integer::sum);
    }
    prefetched.forEach((model, digest) -> {
      held.put(digest, 1.0); // what the plan made this node fetch, peers may ask for
      cached.put(model, 1.0);
    });
    return new Registration(config.getNodeId(), config.getZone(), gpus, cacheBytes, peerUrl,
        new Bandwidth(config.getDiskBytesPerSecond(), config.getPeerBytesPerSecond(), config.getOriginBytesPerSecond()),
        cached, held, fetching, running, snapshots);
  }

  /** The member as the owner rule sees it. */
  public Peer peer() {
    return new Peer(node, peerUrl, held, fetching);
  }

  /** The JSON that goes to etcd. */
  public String toJson() {
    ObjectNode r = JSON.createObjectNode();
    r.put("node", node);
    r.put("zone", zone);
    r.put("gpu_model", gpus.model());
    r.put("gpu_count", gpus.count());
    r.put("gpu_memory_bytes", gpus.memoryBytes());
    r.put("cache_bytes", cacheBytes);
    r.put("peer_url", peerUrl);
    ObjectNode bw = r.putObject("bandwidth");
    bw.put("local_disk", bandwidth.localDisk());
    bw.put("peer", bandwidth.peer());
    bw.put("origin", bandwidth.origin());
    ObjectNode c = r.putObject("cached");
    cached.forEach(c::put);
    ObjectNode h = r.putObject("held");
    held.forEach(h::put);
    ObjectNode f = r.putObject("fetching");
    fetching.forEach(d -> f.put(d, true));
    ObjectNode run = r.putObject("running");
    running.forEach(run::put);
    var snaps = r.putArray("snapshots");
    snapshots.forEach(s -> snaps.addObject().put("name", s.name()).put("key", s.key()));
    return r.toString();
  }

  /** A registration as etcd holds it; what is missing reads as the defaults the solver assumes. */
  public static Registration fromJson(String json) throws IOException {
    JsonNode m = JSON.readTree(json);
    JsonNode bw = m.path("bandwidth");
    Map<String, Double> cached = new LinkedHashMap<>();
    m.path("cached").properties().forEach(e -> cached.put(e.getKey(), e.getValue().asDouble()));
    Map<String, Double> held = new LinkedHashMap<>();
    m.path("held").properties().forEach(e -> held.put(e.getKey(), e.getValue().asDouble()));
    Set<String> fetching = new LinkedHashSet<>();
    m.path("fetching").properties().forEach(e -> {
      if (e.getValue().asBoolean(false)) {
        fetching.add(e.getKey());
      }
    });
    Map<String, Integer> running = new LinkedHashMap<>();
    m.path("running").properties().forEach(e -> running.put(e.getKey(), e.getValue().asInt()));
    List<SnapshotHeld> snapshots = new ArrayList<>();
    m.path("snapshots").forEach(s -> snapshots.add(new SnapshotHeld(s.path("name").asText(), s.path("key").asText())));
    return new Registration(m.path("node").asText(), m.path("zone").asText("default"),
        new Gpus(m.path("gpu_model").asText("none"), m.path("gpu_count").asInt(), m.path("gpu_memory_bytes").asLong()),
        m.path("cache_bytes").asLong(), m.hasNonNull("peer_url") ? m.path("peer_url").asText() : null,
        new Bandwidth(bw.path("local_disk").asDouble(2e9), bw.path("peer").asDouble(1.25e9),
            bw.path("origin").asDouble(0.2e9)),
        cached, held, fetching, running, snapshots);
  }
}
