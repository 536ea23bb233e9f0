package dev.thaw.store;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small HTTP/1.1 file server for fault tests: serves the files of a directory (GET and HEAD, {@code Range:
 * bytes=a-b}, keep-alive) and injects faults by rule — error statuses, truncated bodies, reset connections and
 * corrupted bodies — on every Nth matching request or always, for a limited number of times or forever.
 */
public final class FaultyHttpServer implements AutoCloseable {
  enum Fault {
    /** An error status with a short body; the connection stays open. */
    STATUS,
    /** The headers promise the whole body, half of it is sent, then the connection closes. */
    TRUNCATE,
    /** The connection is reset (SO_LINGER 0, then close) before any response. */
    RESET,
    /** The right headers and length, with one byte of the body flipped. */
    CORRUPT,
    /** The headers and half the body, then nothing more until the server closes: an origin that hangs. */
    STALL
  }

  /** A fault applied to every {@code everyNth} request whose path contains {@code pathContains}, {@code times} times. */
  static final class Rule {
    final Fault fault;
    final int status;
    final int everyNth;
    final String pathContains;
    final AtomicInteger remaining;
    final AtomicInteger matched = new AtomicInteger();
    final Set<String> faultedLast = ConcurrentHashMap.newKeySet();

    private Rule(Fault fault, int status, int everyNth, String pathContains, int times) {
      this.fault = fault;
      this.status = status;
      this.everyNth = everyNth;
      this.pathContains = pathContains;
      this.remaining = new AtomicInteger(times);
    }

    static Rule status(int status, int everyNth) {
      return new Rule(Fault.STATUS, status, everyNth, "", Integer.MAX_VALUE);
    }

    static Rule of(Fault fault, int everyNth) {
      return new Rule(fault, 0, everyNth, "", Integer.MAX_VALUE);
    }

    /** Only requests for paths containing {@code part}. */
    Rule onPathsContaining(String part) {
      return new Rule(fault, status, everyNth, part, remaining.get());
    }

    /** At most {@code n} times. */
    Rule times(int n) {
      return new Rule(fault, status, everyNth, pathContains, n);
    }

    boolean applies(String path) {
      if (!path.contains(pathContains)) {
        return false;
      }
      // An intermittent fault never hits the same path twice in a row: the count is over all requests, and with
      // several in flight one chunk's retries could otherwise keep drawing the faulty turn until its attempts run out,
      // which would test luck, not retrying.
      if (everyNth > 1 && faultedLast.remove(path)) {
        return false;
      }
      int n = matched.incrementAndGet();
      if (n % everyNth != 0) {
        return false;
      }
      boolean fault = remaining.getAndUpdate(r -> r > 0 ? r - 1 : 0) > 0;
      if (fault && everyNth > 1) {
        faultedLast.add(path);
      }
      return fault;
    }
  }

  private final Path root;
  private final ServerSocket server;
  private final Thread acceptor;
  private final List<Rule> rules = new CopyOnWriteArrayList<>();
  private final Set<Socket> open = ConcurrentHashMap.newKeySet();
  private final AtomicInteger requests = new AtomicInteger();
  private final AtomicInteger faults = new AtomicInteger();
  private volatile boolean closed;

  public FaultyHttpServer(Path root) throws IOException {
    this.root = root.toAbsolutePath().normalize();
    this.server = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
    this.acceptor = Thread.ofPlatform().daemon().name("faulty-http-accept").start(this::acceptLoop);
  }

  public String url() {
    return "http://127.0.0.1:" + server.getLocalPort() + "/";
  }

  /** Adds a fault rule; the first rule that applies to a request decides its fault. */
  FaultyHttpServer inject(Rule rule) {
    rules.add(rule);
    return this;
  }

  void clearFaults() {
    rules.clear();
  }

  /** Requests received, faulty ones included. */
  int requests() {
    return requests.get();
  }

  int faultsInjected() {
    return faults.get();
  }

  void resetCounters() {
    requests.set(0);
    faults.set(0);
  }

  private void acceptLoop() {
    while (!closed) {
      try {
        Socket s = server.accept();
        open.add(s);
        Thread.ofVirtual().name("faulty-http-conn").start(() -> serve(s));
      } catch (IOException e) {
        if (!closed) {
          e.printStackTrace();
        }
      }
    }
  }

  private void serve(Socket socket) {
    try (socket) {
      InputStream in = new BufferedInputStream(socket.getInputStream());
      OutputStream out = socket.getOutputStream();
      while (!closed) {
        String requestLine = readLine(in);
        if (requestLine == null) {
          return;
        }
        if (requestLine.isEmpty()) {
          continue;
        }
        String range = null;
        boolean keepAlive = true;
        for (String h = readLine(in); h != null && !h.isEmpty(); h = readLine(in)) {
          int colon = h.indexOf(':');
          if (colon < 0) {
            continue;
          }
          String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
          String value = h.substring(colon + 1).trim();
          if (name.equals("range")) {
            range = value;
          } else if (name.equals("connection") && value.equalsIgnoreCase("close")) {
            keepAlive = false;
          }
        }
        String[] parts = requestLine.split(" ");
        requests.incrementAndGet();
        if (!respond(socket, out, parts[0], parts.length > 1 ? parts[1] : "/", range) || !keepAlive) {
          return;
        }
      }
    } catch (IOException e) {
      // the client went away, or a fault closed the connection
    } finally {
      open.remove(socket);
    }
  }

  /** Answers one request; false when the connection must not be used again. */
  private boolean respond(Socket socket, OutputStream out, String method, String target, String range) throws IOException {
    String path = URLDecoder.decode(target.split("\\?")[0], StandardCharsets.UTF_8);
    Rule rule = null;
    for (Rule r : rules) {
      if (r.applies(path)) {
        rule = r;
        break;
      }
    }
    if (rule != null) {
      faults.incrementAndGet();
      if (rule.fault == Fault.STATUS) {
        send(out, rule.status, "injected", "text/plain", ("injected " + rule.status + "\n").getBytes(StandardCharsets.UTF_8), method, null);
        return true;
      }
      if (rule.fault == Fault.RESET) {
        socket.setSoLinger(true, 0);
        socket.close();
        return false;
      }
    }
    Path file = root.resolve(path.startsWith("/") ? path.substring(1) : path).normalize();
    if (!file.startsWith(root) || !Files.isRegularFile(file)) {
      send(out, 404, "Not Found", "text/plain", "not found\n".getBytes(StandardCharsets.UTF_8), method, null);
      return true;
    }
    byte[] all = Files.readAllBytes(file);
    int status = 200;
    String contentRange = null;
    byte[] body = all;
    if (range != null && range.startsWith("bytes=")) {
      String[] ab = range.substring(6).split("-", 2);
      long a = Long.parseLong(ab[0]);
      long b = ab[1].isEmpty() ? all.length - 1 : Math.min(Long.parseLong(ab[1]), all.length - 1);
      if (a >= all.length || a > b) {
        send(out, 416, "Range Not Satisfiable", "text/plain", new byte[0], method, "bytes */" + all.length);
        return true;
      }
      body = java.util.Arrays.copyOfRange(all, (int) a, (int) b + 1);
      status = 206;
      contentRange = "bytes " + a + "-" + b + "/" + all.length;
    }
    if (rule != null && rule.fault == Fault.CORRUPT && body.length > 0) {
      body = body.clone();
      body[body.length / 2] ^= 0x5A;
    }
    if (rule != null && rule.fault == Fault.STALL && method.equals("GET")) {
      writeHead(out, status, status == 206 ? "Partial Content" : "OK", "application/octet-stream", body.length, contentRange);
      out.write(body, 0, body.length / 2);
      out.flush();
      while (!closed) {
        try {
          Thread.sleep(50);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      return false;
    }
    if (rule != null && rule.fault == Fault.TRUNCATE && body.length > 1 && method.equals("GET")) {
      writeHead(out, status, status == 206 ? "Partial Content" : "OK", "application/octet-stream", body.length, contentRange);
      out.write(body, 0, body.length / 2);
      out.flush();
      socket.close();
      return false;
    }
    send(out, status, status == 206 ? "Partial Content" : "OK", "application/octet-stream", body, method, contentRange);
    return true;
  }

  private static void send(OutputStream out, int status, String reason, String type, byte[] body, String method,
      String contentRange) throws IOException {
    writeHead(out, status, reason, type, body.length, contentRange);
    if (!method.equals("HEAD")) {
      out.write(body);
    }
    out.flush();
  }

  private static void writeHead(OutputStream out, int status, String reason, String type, long length, String contentRange)
      throws IOException {
    StringBuilder h = new StringBuilder();
    h.append("HTTP/1.1 ").append(status).append(' ').append(reason).append("\r\n");
    h.append("Content-Type: ").append(type).append("\r\n");
    h.append("Content-Length: ").append(length).append("\r\n");
    if (contentRange != null) {
      h.append("Content-Range: ").append(contentRange).append("\r\n");
    }
    h.append("Accept-Ranges: bytes\r\n");
    h.append("Connection: keep-alive\r\n\r\n");
    out.write(h.toString().getBytes(StandardCharsets.ISO_8859_1));
  }

  /** One CRLF-terminated line, without the terminator; null at the end of the stream. */
  private static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream(128);
    int c;
    while ((c = in.read()) >= 0) {
      if (c == '\n') {
        byte[] b = line.toByteArray();
        int n = b.length > 0 && b[b.length - 1] == '\r' ? b.length - 1 : b.length;
        return new String(b, 0, n, StandardCharsets.ISO_8859_1);
      }
      line.write(c);
    }
    return line.size() == 0 ? null : line.toString(StandardCharsets.ISO_8859_1);
  }

  @Override
  public void close() throws IOException {
    closed = true;
    server.close();
    for (Socket s : open) {
      try {
        s.close();
      } catch (IOException ignored) {
        // closing anyway
      }
    }
    try {
      acceptor.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
