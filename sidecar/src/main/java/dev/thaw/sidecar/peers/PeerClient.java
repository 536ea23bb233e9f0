package dev.thaw.sidecar.peers;

import dev.thaw.store.ChunkRef;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Asks one peer for one chunk within the peer timeout; which peers, in which order, is the caller's choice
 * ({@link ChunkOwners}). A peer that answers 404, fails, stalls or sends fewer bytes than the chunk has counts as
 * not having it. The fetcher checks what a peer sends against the chunk's hash.
 */
public final class PeerClient {
  private static final Logger LOG = Logger.getLogger(PeerClient.class.getName());

  private final String token;
  private final Duration timeout;
  private final HttpClient http;

  /** A client sending {@code token}, giving each peer {@code timeout} for a whole chunk. */
  public PeerClient(String token, Duration timeout) {
    this.token = token;
    this.timeout = timeout;
    this.http = HttpClient.newBuilder().connectTimeout(timeout).build();
  }

  /**
   * Asks one peer for the chunk, as its owner ({@code asOwner}: it fetches the chunk from the origin if it lacks it)
   * or as a holder; true when it sent the whole chunk within the timeout.
   */
  public boolean readFrom(String peer, ChunkRef chunk, ByteBuffer into, boolean asOwner) {
    HttpRequest req = HttpRequest.newBuilder(URI.create(peer + "/v1/chunks/" + chunk.key() + (asOwner ? "?owner" : "")))
        .header("Authorization", "Bearer " + token).timeout(timeout).GET().build();
    CompletableFuture<HttpResponse<byte[]>> f = http.sendAsync(req, HttpResponse.BodyHandlers.ofByteArray());
    try {
      // the whole chunk within the timeout: a peer that stalls mid-body is as good as gone
      HttpResponse<byte[]> r = f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      if (r.statusCode() != 200) {
        return false;
      }
      if (r.body().length != chunk.length()) {
        LOG.log(Level.INFO, () -> "event=peer_short_read peer=" + peer + " chunk=" + chunk.key() + " got="
            + r.body().length + " action=next");
        return false;
      }
      into.clear().limit(chunk.length());
      into.put(r.body());
      return true;
    } catch (InterruptedException e) {
      f.cancel(true);
      Thread.currentThread().interrupt();
      return false;
    } catch (ExecutionException | TimeoutException | RuntimeException e) {
      f.cancel(true);
      LOG.log(Level.INFO, () -> "event=peer_failed peer=" + peer + " chunk=" + chunk.key() + " cause="
          + (e instanceof ExecutionException ? e.getCause() : e) + " action=next");
    }
    return false;
  }
}
