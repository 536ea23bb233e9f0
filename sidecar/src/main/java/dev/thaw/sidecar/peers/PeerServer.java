package dev.thaw.sidecar.peers;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.thaw.store.ChunkCache;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.regex.Pattern;

/**
 * The peer endpoint: {@code GET /v1/chunks/{key}} serves a chunk of this node's cache to the other members. It has
 * its own address and port, apart from the control API, and nothing else is reachable on it. Every request needs
 * {@code Authorization: Bearer TOKEN}, compared in constant time. A chunk is hashed again before it leaves
 * ({@link ChunkCache#acquireVerified}): the cache's disk may have rotted since it was verified on arrival, and a wrong
 * one is deleted, never served. Asked as a chunk's owner ({@code ?owner}) for one it lacks, it fetches the chunk
 * through {@link OwnerFetch}, once for everyone. Built on the JDK's HTTP server: one route, its own socket, no routes of
 * the control API beside it.
 */
public final class PeerServer implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(PeerServer.class.getName());
  private static final Pattern KEY = Pattern.compile("[A-Za-z0-9._-]{1,200}");
  private static final String PATH = "/v1/chunks/";

  private final HttpServer server;
  private final java.util.concurrent.ExecutorService requests = Executors.newVirtualThreadPerTaskExecutor();
  private final ChunkCache cache;
  private final OwnerFetch owned;
  private final Duration ownerTimeout;
  private final byte[] expected;

  /**
   * Listens on {@code host:port} (port 0: any free one) for callers with {@code token}, serving {@code cache}; as a
   * chunk's owner it fetches through {@code owned}, waiting at most {@code ownerTimeout}.
   */
  public PeerServer(String host, int port, String token, ChunkCache cache, OwnerFetch owned, Duration ownerTimeout)
      throws IOException {
    this.cache = cache;
    this.owned = owned;
    this.ownerTimeout = ownerTimeout;
    this.expected = ("Bearer " + token).getBytes(StandardCharsets.UTF_8);
    this.server = HttpServer.create(new InetSocketAddress(host, port), 64);
    server.setExecutor(requests);
    server.createContext("/", this::handle);
    server.start();
  }

  /** The port it listens on: the one asked for, or the one it was given for port 0. */
  public int port() {
    return server.getAddress().getPort();
  }

  private void handle(HttpExchange x) throws IOException {
    try (x) {
      String given = x.getRequestHeaders().getFirst("Authorization");
      if (given == null || !MessageDigest.isEqual(expected, given.getBytes(StandardCharsets.UTF_8))) {
        send(x, 401, "the cluster token is missing or wrong");
        return;
      }
      String path = x.getRequestURI().getPath();
      if (!x.getRequestMethod().equals("GET") || !path.startsWith(PATH)) {
        send(x, 404, "only GET " + PATH + "{key} is served here");
        return;
      }
      String key = path.substring(PATH.length());
      if (!KEY.matcher(key).matches()) {
        send(x, 400, "not a chunk key: " + key);
        return;
      }
      ChunkCache.Lease lease = cache.acquireVerified(key);
      if (lease == null && "owner".equals(x.getRequestURI().getQuery())) {
        // the caller takes this node for the chunk's owner: fetch it from the origin, once for everyone
        try {
          if (owned.fetchOwned(key, ownerTimeout)) {
            lease = cache.acquireVerified(key);
          }
        } catch (Exception e) {
          send(x, 502, "could not fetch chunk " + key + " from the origin: " + e);
          return;
        }
      }
      if (lease == null) {
        send(x, 404, "no chunk " + key + " here");
        return;
      }
      try (ChunkCache.Lease held = lease) {
        long size = held.size();
        x.getResponseHeaders().set("Content-Type", "application/octet-stream");
        x.sendResponseHeaders(200, size);
        OutputStream out = x.getResponseBody();
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(size, 1 << 20));
        long pos = 0;
        while (pos < size) {
          buf.clear();
          int n = held.read(buf, pos);
          if (n <= 0) {
            break;
          }
          out.write(buf.array(), 0, n);
          pos += n;
        }
      }
    } catch (IOException | RuntimeException e) {
      LOG.log(Level.FINE, "event=peer_request_failed cause=" + e);
    }
  }

  private static void send(HttpExchange x, int status, String message) throws IOException {
    byte[] body = message.getBytes(StandardCharsets.UTF_8);
    x.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
    x.sendResponseHeaders(status, body.length);
    x.getResponseBody().write(body);
  }

  @Override
  public void close() {
    server.stop(0);
    requests.shutdownNow(); // requests still running (waiting on an owner's fetch) end now, not at the JVM's exit
  }
}
