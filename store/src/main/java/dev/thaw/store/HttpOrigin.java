package dev.thaw.store;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import javax.net.ssl.SSLContext;

/**
 * A read-only origin over HTTP(S): objects are URLs under the root, read with {@code Range} GETs on kept-alive
 * connections. {@code http://} speaks HTTP/1.1; {@code https://} speaks HTTP/2 when the server offers it. The query
 * may set {@code http=1.1} or {@code http=2} to choose, and {@code ca=FILE} (PEM certificates) to trust a private CA
 * in place of the JDK's default trust store.
 */
final class HttpOrigin implements Origin {
  private final String root;
  private final HttpTransport transport;

  HttpOrigin(URI root, int maxConnections, Duration connectTimeout, Duration requestTimeout) {
    String path = root.getRawPath() == null || root.getRawPath().isEmpty() ? "/" : root.getRawPath();
    this.root = root.getScheme() + "://" + root.getRawAuthority() + (path.endsWith("/") ? path : path + "/");
    Map<String, String> q = Origins.query(root);
    SSLContext ssl = q.containsKey("ca") ? trusting(java.nio.file.Path.of(q.get("ca"))) : null;
    boolean tls = "https".equalsIgnoreCase(root.getScheme());
    String version = q.getOrDefault("http", tls ? "2" : "1.1");
    this.transport = switch (version) {
      case "1.1" -> HttpTransport.http11(maxConnections, connectTimeout, requestTimeout, ssl);
      case "2" -> HttpTransport.http2(connectTimeout, requestTimeout, ssl);
      default -> throw new IllegalArgumentException("http=" + version + " in " + root + ": use http=1.1 or http=2");
    };
  }

  private static SSLContext trusting(java.nio.file.Path pem) {
    try (InputStream in = java.nio.file.Files.newInputStream(pem)) {
      java.security.KeyStore store = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType());
      store.load(null, null);
      int i = 0;
      for (java.security.cert.Certificate c :
          java.security.cert.CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        store.setCertificateEntry("ca-" + i++, c);
      }
      if (i == 0) {
        throw new IllegalArgumentException("no certificate in " + pem);
      }
      javax.net.ssl.TrustManagerFactory tmf =
          javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(store);
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(null, tmf.getTrustManagers(), null);
      return ctx;
    } catch (IOException | java.security.GeneralSecurityException e) {
      throw new IllegalArgumentException("cannot load CA certificates from " + pem + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String uri() {
    return root;
  }

  @Override
  public String urlOf(String key) {
    return root + key;
  }

  @Override
  public boolean writable() {
    return false;
  }

  private HttpTransport.Exchange send(String method, String key, Map<String, String> headers) throws OriginException {
    try {
      return transport.send(method, urlOf(key), headers);
    } catch (IOException e) {
      throw transportError(urlOf(key), method, e);
    } catch (RuntimeException e) {
      throw new OriginException(urlOf(key), OriginException.NO_STATUS, false, method + " " + urlOf(key) + " failed", e);
    }
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
    read(key, offset, dst, ifMatch, ReadProgress.NONE);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch, ReadProgress progress) throws OriginException {
    int length = dst.remaining();
    if (length == 0) {
      return;
    }
    String url = urlOf(key);
    Map<String, String> headers = ifMatch == null
        ? Map.of("Range", "bytes=" + offset + "-" + (offset + length - 1))
        : Map.of("Range", "bytes=" + offset + "-" + (offset + length - 1), "If-Match", ifMatch);
    try (HttpTransport.Exchange x = send("GET", key, headers)) {
      int status = x.status();
      if (status == 200 && offset != 0) {
        throw new OriginException(url, status, false, "server ignored the Range header for " + url, null);
      }
      if (status != 206 && status != 200) {
        throw statusError(url, status, "GET");
      }
      InputStream body = x.body();
      byte[] buf = dst.hasArray() ? null : new byte[Math.min(length, 1 << 20)];
      while (dst.hasRemaining()) {
        int n;
        if (buf == null) {
          n = body.read(dst.array(), dst.arrayOffset() + dst.position(), dst.remaining());
          if (n > 0) {
            dst.position(dst.position() + n);
          }
        } else {
          n = body.read(buf, 0, Math.min(buf.length, dst.remaining()));
          if (n > 0) {
            dst.put(buf, 0, n);
          }
        }
        if (n > 0) {
          progress.arrived(dst.position());
        }
        if (n < 0) {
          throw new OriginException(url, status, true,
              "truncated body from " + url + ": got " + (length - dst.remaining()) + " of " + length + " bytes", null);
        }
      }
      if (status == 206 && body.read() != -1) {
        throw new OriginException(url, status, false, "server sent more than the requested range of " + url, null);
      }
    } catch (IOException e) {
      throw transportError(url, "GET", e);
    }
  }

  @Override
  public byte[] readAll(String key) throws OriginException {
    String url = urlOf(key);
    try (HttpTransport.Exchange x = send("GET", key, Map.of())) {
      if (x.status() != 200) {
        throw statusError(url, x.status(), "GET");
      }
      byte[] bytes = x.body().readAllBytes();
      long expected = x.header("Content-Length").map(Long::parseLong).orElse(-1L);
      if (expected >= 0 && bytes.length != expected) {
        throw new OriginException(url, 200, true,
            "truncated body from " + url + ": got " + bytes.length + " of " + expected + " bytes", null);
      }
      return bytes;
    } catch (IOException e) {
      throw transportError(url, "GET", e);
    }
  }

  @Override
  public Optional<ObjectInfo> stat(String key) throws OriginException {
    String url = urlOf(key);
    try (HttpTransport.Exchange x = send("HEAD", key, Map.of())) {
      int status = x.status();
      if (status == 404) {
        return Optional.empty();
      }
      if (status != 200) {
        throw statusError(url, status, "HEAD");
      }
      long size = x.header("Content-Length").map(Long::parseLong).orElse(-1L);
      String etag = x.header("ETag").orElse(null);
      Instant modified = x.header("Last-Modified")
          .map(v -> ZonedDateTime.parse(v, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant())
          .orElse(Instant.EPOCH);
      return Optional.of(new ObjectInfo(key, size, etag, modified));
    } catch (IOException e) {
      throw transportError(url, "HEAD", e);
    }
  }

  @Override
  public List<ObjectInfo> list(String prefix) throws OriginException {
    throw readOnly(prefix, "list");
  }

  @Override
  public void write(String key, ByteBuffer data) throws OriginException {
    throw readOnly(key, "write");
  }

  @Override
  public void delete(String key) throws OriginException {
    throw readOnly(key, "delete");
  }

  @Override
  public void touch(String key) throws OriginException {
    throw readOnly(key, "touch");
  }

  private OriginException readOnly(String key, String what) {
    return new OriginException(urlOf(key), OriginException.NO_STATUS, false,
        "http(s) origins are read-only and cannot " + what + " " + urlOf(key)
            + "; push to a file:// or s3:// origin and serve that directory over HTTP", null);
  }

  static OriginException statusError(String url, int status, String method) {
    boolean retryable = status >= 500 || status == 429 || status == 408;
    String what = switch (status) {
      case 404 -> "not found: ";
      case 412 -> "object changed since it was listed: ";
      case 401, 403 -> "access denied: ";
      default -> method + " failed: ";
    };
    return new OriginException(url, status, retryable, what + url, null);
  }

  /**
   * Whether a failure comes from the peer's certificate anywhere in its causes: the HTTP clients wrap the handshake's
   * exception to different depths, depending on when in the exchange it surfaced.
   */
  static boolean untrustedPeer(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof javax.net.ssl.SSLHandshakeException || t instanceof javax.net.ssl.SSLPeerUnverifiedException
          || t instanceof java.security.cert.CertificateException) {
        return true;
      }
    }
    return false;
  }

  static OriginException transportError(String url, String method, IOException e) {
    if (e instanceof OriginException oe) {
      return oe;
    }
    if (untrustedPeer(e)) {
      // A certificate the client does not trust will not become trusted by retrying.
      return new OriginException(url, OriginException.NO_STATUS, false, "TLS handshake with " + url
          + " failed (for a private CA, add ?ca=FILE.pem to the origin URI)", e);
    }
    String kind = e instanceof HttpTimeoutException || e instanceof java.net.SocketTimeoutException
        ? "timed out" : "connection failed";
    return new OriginException(url, OriginException.NO_STATUS, true, method + " " + url + " " + kind, e);
  }

  @Override
  public void close() {
    try {
      transport.close();
    } catch (IOException ignored) {
      // closing idle connections; nothing is lost
    }
  }

  @Override
  public String toString() {
    return root;
  }
}
