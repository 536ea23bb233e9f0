package dev.thaw.store;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import javax.net.ssl.SSLContext;
import org.apache.http.Header;
import org.apache.http.HttpEntity;
import org.apache.http.client.config.RequestConfig;
import org.apache.http.client.methods.CloseableHttpResponse;
import org.apache.http.client.methods.HttpGet;
import org.apache.http.client.methods.HttpHead;
import org.apache.http.client.methods.HttpRequestBase;
import org.apache.http.config.RegistryBuilder;
import org.apache.http.conn.socket.ConnectionSocketFactory;
import org.apache.http.conn.socket.PlainConnectionSocketFactory;
import org.apache.http.conn.ssl.SSLConnectionSocketFactory;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClients;
import org.apache.http.impl.conn.PoolingHttpClientConnectionManager;

/**
 * How {@link HttpOrigin} sends a request. Two implementations, chosen per origin: blocking HTTP/1.1 (Apache
 * HttpClient: each fetch thread reads its body straight from its socket, the cheapest path per byte, and one
 * connection per request in flight, which is how object stores spread bandwidth), and the JDK's client for HTTP/2
 * (multiplexed over one TLS connection when the server offers it, HTTP/1.1 otherwise).
 */
interface HttpTransport extends Closeable {
  /** One response; closing it releases (or, if its body was not read to the end, drops) the connection. */
  interface Exchange extends Closeable {
    int status();

    Optional<String> header(String name);

    InputStream body() throws IOException;
  }

  Exchange send(String method, String url, Map<String, String> headers) throws IOException;

  static HttpTransport http11(int maxConnections, Duration connectTimeout, Duration readTimeout, SSLContext ssl) {
    return new Http11(maxConnections, connectTimeout, readTimeout, ssl);
  }

  static HttpTransport http2(Duration connectTimeout, Duration requestTimeout, SSLContext ssl) {
    return new Http2(connectTimeout, requestTimeout, ssl);
  }

  final class Http11 implements HttpTransport {
    private final CloseableHttpClient client;
    private final PoolingHttpClientConnectionManager pool;

    Http11(int maxConnections, Duration connectTimeout, Duration readTimeout, SSLContext ssl) {
      RegistryBuilder<ConnectionSocketFactory> sockets = RegistryBuilder.<ConnectionSocketFactory>create()
          .register("http", PlainConnectionSocketFactory.getSocketFactory())
          .register("https", ssl == null ? SSLConnectionSocketFactory.getSocketFactory() : new SSLConnectionSocketFactory(ssl));
      pool = new PoolingHttpClientConnectionManager(sockets.build());
      pool.setMaxTotal(maxConnections);
      pool.setDefaultMaxPerRoute(maxConnections);
      pool.setValidateAfterInactivity(2_000);
      client = HttpClients.custom()
          .setConnectionManager(pool)
          .setDefaultRequestConfig(RequestConfig.custom()
              .setConnectTimeout((int) connectTimeout.toMillis())
              .setConnectionRequestTimeout((int) readTimeout.toMillis())
              .setSocketTimeout((int) readTimeout.toMillis())
              .setRedirectsEnabled(true)
              .build())
          .disableAutomaticRetries() // RetryPolicy retries, so errors report the true attempt count
          .disableContentCompression() // ranges of weights do not compress; never let a proxy gzip them
          .disableCookieManagement()
          .setUserAgent("thaw")
          .build();
    }

    @Override
    public Exchange send(String method, String url, Map<String, String> headers) throws IOException {
      HttpRequestBase request = "HEAD".equals(method) ? new HttpHead(url) : new HttpGet(url);
      headers.forEach(request::setHeader);
      CloseableHttpResponse response = client.execute(request);
      return new Exchange() {
        @Override
        public int status() {
          return response.getStatusLine().getStatusCode();
        }

        @Override
        public Optional<String> header(String name) {
          Header h = response.getFirstHeader(name);
          return h == null ? Optional.empty() : Optional.of(h.getValue());
        }

        @Override
        public InputStream body() throws IOException {
          HttpEntity e = response.getEntity();
          return e == null ? InputStream.nullInputStream() : e.getContent();
        }

        @Override
        public void close() throws IOException {
          // A body read to its end has already returned the connection to the pool; otherwise this drops it.
          response.close();
        }
      };
    }

    @Override
    public void close() throws IOException {
      client.close();
    }
  }

  final class Http2 implements HttpTransport {
    private final HttpClient client;
    private final Duration requestTimeout;

    Http2(Duration connectTimeout, Duration requestTimeout, SSLContext ssl) {
      this.requestTimeout = requestTimeout;
      HttpClient.Builder b = HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_2)
          .connectTimeout(connectTimeout)
          .followRedirects(HttpClient.Redirect.NORMAL);
      if (ssl != null) {
        b.sslContext(ssl);
      }
      this.client = b.build();
    }

    @Override
    public Exchange send(String method, String url, Map<String, String> headers) throws IOException {
      HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(requestTimeout)
          .method(method, HttpRequest.BodyPublishers.noBody());
      headers.forEach(b::header);
      HttpResponse<InputStream> response;
      try {
        response = client.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted: " + method + " " + url);
      }
      return new Exchange() {
        @Override
        public int status() {
          return response.statusCode();
        }

        @Override
        public Optional<String> header(String name) {
          return response.headers().firstValue(name);
        }

        @Override
        public InputStream body() {
          return response.body();
        }

        @Override
        public void close() throws IOException {
          response.body().close();
        }
      };
    }

    @Override
    public void close() {
      client.close();
    }
  }
}
