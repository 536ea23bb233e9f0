package dev.thaw.sidecar.cluster;

import dev.thaw.sidecar.peers.ChunkOwners;
import dev.thaw.sidecar.peers.ChunkPeersFactory;
import dev.thaw.sidecar.peers.Peer;
import dev.thaw.sidecar.peers.PeerClient;
import dev.thaw.store.ChunkPeers;
import jakarta.inject.Singleton;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The members as this one last read their registrations from etcd, and the chunk peers the sidecar's readers ask:
 * the owner rule ({@link ChunkOwners}) over those members. Standalone it gives no peers; while etcd is out of reach it
 * knows no members, so every chunk comes from the origin. {@link ClusterMember} keeps it up to date.
 */
@Singleton
final class KnownMembers implements ChunkPeersFactory {
  private final ClusterConfig config;
  private final String token;
  private volatile Map<String, Registration> members = Map.of();
  private volatile List<Peer> peers = List.of(); // the same members, as the owner rule reads them
  private volatile boolean reachable;

  KnownMembers(ClusterConfig config) {
    this.config = config;
    this.token = config.enabled() ? config.resolveToken() : null; // cluster mode without a token stops the start
  }

  /** The cluster token: what the peer endpoint asks of callers and what this node sends to the others. */
  String token() {
    return token;
  }

  @Override
  public Optional<ChunkPeers> forModel(String digest) {
    if (!config.enabled()) {
      return Optional.empty();
    }
    return Optional.of(new ChunkOwners(config.getNodeId(), digest, this::peers,
        new PeerClient(token, config.getPeerTimeout())));
  }

  /** The members as last read, this one among them; none while etcd is out of reach. */
  List<Peer> peers() {
    return reachable ? peers : List.of();
  }

  /** The registrations as last read, node to registration. */
  Map<String, Registration> members() {
    return members;
  }

  /** The registrations just read, node to registration. */
  void update(Map<String, Registration> read) {
    Map<String, Registration> byNode = Collections.unmodifiableMap(new TreeMap<>(read)); // in node order, as read
    peers = byNode.values().stream().map(Registration::peer).toList();
    members = byNode;
  }

  /** Whether etcd answers: while it does not, the registrations last read may be stale, and no peer is asked. */
  void reachable(boolean answers) {
    reachable = answers;
  }
}
