package dev.thaw.sidecar.peers;

import dev.thaw.store.ChunkPeers;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.Hashes;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * The owner rule: which members to ask for a chunk of one model, chosen afresh for each chunk from the members as last
 * heard of. First a member holding all of the model; else the chunk's owner among the members fetching the model
 * (rendezvous hashing: each chunk one owner, which fetches it from the origin for all), unless that is this node; then
 * any member holding part of it (what was heard can be a moment old). None: the origin.
 */
public final class ChunkOwners implements ChunkPeers {
  private static final Logger LOG = Logger.getLogger(ChunkOwners.class.getName());

  /** Asks one peer for one chunk, as its owner or as a holder: {@link PeerClient#readFrom}, or a stand-in. */
  @FunctionalInterface
  interface PeerRead {
    boolean read(String url, ChunkRef chunk, ByteBuffer into, boolean asOwner);
  }

  private final String self;
  private final String digest;
  private final Supplier<List<Peer>> members;
  private final PeerRead ask;

  /**
   * The peers for the model with manifest {@code digest}, as node {@code self} sees them: {@code members} says who
   * the members are now (this node may be among them; empty while the cluster is out of reach), {@code client} asks
   * them.
   */
  public ChunkOwners(String self, String digest, Supplier<List<Peer>> members, PeerClient client) {
    this(self, digest, members, client::readFrom);
  }

  ChunkOwners(String self, String digest, Supplier<List<Peer>> members, PeerRead ask) {
    this.self = self;
    this.digest = digest;
    this.members = members;
    this.ask = ask;
  }

  @Override
  public boolean read(ChunkRef chunk, ByteBuffer into) {
    List<Peer> others = members.get().stream().filter(p -> !p.node().equals(self) && p.url() != null).toList();
    for (Peer p : others) {
      if (p.holds(digest) >= 1.0 && ask.read(p.url(), chunk, into, false)) {
        return true;
      }
    }
    String owner = self;
    String ownerUrl = null;
    long best = score(owner, chunk.key());
    for (Peer p : others) {
      if (p.fetching().contains(digest)) {
        long s = score(p.node(), chunk.key());
        if (s > best) {
          best = s;
          owner = p.node();
          ownerUrl = p.url();
        }
      }
    }
    if (ownerUrl != null) {
      if (ask.read(ownerUrl, chunk, into, true)) {
        return true;
      }
      LOG.info("event=owner_failed owner=" + owner + " chunk=" + chunk.key() + " action=holders_then_origin");
    }
    // this node owns the chunk, or its owner failed: a member holding part of the model may have it (a 404 is
    // cheap), else the origin, once, for everyone
    for (Peer p : others) {
      double held = p.holds(digest);
      if (held > 0 && held < 1.0 && !p.node().equals(owner) && ask.read(p.url(), chunk, into, false)) {
        return true;
      }
    }
    return false;
  }

  /** Rendezvous hashing: the member with the highest score for a chunk owns it. */
  static long score(String node, String chunkKey) {
    byte[] h = Hashes.newDigest().digest((node + "\n" + chunkKey).getBytes(StandardCharsets.UTF_8));
    return ByteBuffer.wrap(h).getLong();
  }
}
