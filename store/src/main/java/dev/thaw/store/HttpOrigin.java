package dev.thaw.store;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Optional;

/**
 * A read-only origin over HTTP(S): objects are URLs under the root, read with {@code Range} GETs on kept-alive
 * connections (HTTP/1.1 for {@code http://}, HTTP/2 when the server offers it over {@code https://}).
 */
final class HttpOrigin implements Origin {
  private final String root;
  private final HttpClient client;
  private final Duration requestTimeout;

  /**
   * @param root the origin's root; the query may name {@code ca=FILE}, PEM certificates to trust for
   *     {@code https://} in place of the JDK's default trust store (origins behind a private CA)
   */
  HttpOrigin(URI root, Duration connectTimeout, Duration requestTimeout) {
    String path = root.getRawPath() == null || root.getRawPath().isEmpty() ? "/" : root.getRawPath();
    this.root = root.getScheme() + "://" + root.getRawAuthority() + (path.endsWith("/") ? path : path + "/");
    this.requestTimeout = requestTimeout;
    HttpClient.Builder b = HttpClient.newBuilder()
        .version("https".equalsIgnoreCase(root.getScheme()) ? HttpClient.Version.HTTP_2 : HttpClient.Version.HTTP_1_1)
        .connectTimeout(connectTimeout)
        .followRedirects(HttpClient.Redirect.NORMAL);
    String ca = Origins.query(root).get("ca");
    if (ca != null) {
      b.sslContext(trusting(java.nio.file.Path.of(ca)));
    }
    this.client = b.build();
  }

  private static javax.net.ssl.SSLContext trusting(java.nio.file.Path pem) {
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
      javax.net.ssl.SSLContext ctx = javax.net.ssl.SSLContext.getInstance("TLS");
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

  private HttpRequest.Builder request(String key) {
    return HttpRequest.newBuilder(URI.create(urlOf(key))).timeout(requestTimeout);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
    int length = dst.remaining();
    if (length == 0) {
      return;
    }
    HttpRequest.Builder b = request(key).GET().header("Range", "bytes=" + offset + "-" + (offset + length - 1));
    if (ifMatch != null) {
      b.header("If-Match", ifMatch);
    }
    HttpResponse<InputStream> response = send(key, b.build());
    String url = urlOf(key);
    try (InputStream body = response.body()) {
      int status = response.statusCode();
      if (status == 200 && offset != 0) {
        throw new OriginException(url, status, false, "server ignored the Range header for " + url, null);
      }
      if (status != 206 && status != 200) {
        throw statusError(url, status, "GET");
      }
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
        if (n < 0) {
          throw new OriginException(url, status, true,
              "truncated body from " + url + ": got " + (length - dst.remaining()) + " of " + length + " bytes", null);
        }
      }
    } catch (IOException e) {
      throw transportError(url, "GET", e);
    }
  }

  @Override
  public byte[] readAll(String key) throws OriginException {
    String url = urlOf(key);
    HttpResponse<InputStream> response = send(key, request(key).GET().build());
    try (InputStream body = response.body()) {
      if (response.statusCode() != 200) {
        throw statusError(url, response.statusCode(), "GET");
      }
      byte[] bytes = body.readAllBytes();
      long expected = response.headers().firstValueAsLong("Content-Length").orElse(-1);
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
    HttpResponse<InputStream> response = send(key, request(key).method("HEAD", HttpRequest.BodyPublishers.noBody()).build());
    try (InputStream ignored = response.body()) {
      int status = response.statusCode();
      if (status == 404) {
        return Optional.empty();
      }
      if (status != 200) {
        throw statusError(url, status, "HEAD");
      }
      HttpHeaders h = response.headers();
      long size = h.firstValueAsLong("Content-Length").orElse(-1);
      String etag = h.firstValue("ETag").orElse(null);
      Instant modified = h.firstValue("Last-Modified")
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

  private HttpResponse<InputStream> send(String key, HttpRequest request) throws OriginException {
    try {
      return client.send(request, HttpResponse.BodyHandlers.ofInputStream());
    } catch (IOException e) {
      throw transportError(urlOf(key), request.method(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new OriginException(urlOf(key), OriginException.NO_STATUS, false, "interrupted: " + request.method() + " " + urlOf(key), e);
    }
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

  static OriginException transportError(String url, String method, IOException e) {
    if (e instanceof OriginException oe) {
      return oe;
    }
    if (e instanceof javax.net.ssl.SSLHandshakeException || e.getCause() instanceof javax.net.ssl.SSLHandshakeException) {
      // A certificate the client does not trust will not become trusted by retrying.
      return new OriginException(url, OriginException.NO_STATUS, false, "TLS handshake with " + url
          + " failed (for a private CA, add ?ca=FILE.pem to the origin URI)", e);
    }
    String kind = e instanceof HttpTimeoutException ? "timed out" : "connection failed";
    return new OriginException(url, OriginException.NO_STATUS, true, method + " " + url + " " + kind, e);
  }

  @Override
  public String toString() {
    return root;
  }
}
