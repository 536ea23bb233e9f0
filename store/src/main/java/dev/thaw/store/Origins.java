package dev.thaw.store;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/** Opens an {@link Origin} for a URI: {@code file:///dir}, {@code http(s)://host/path}, {@code s3://bucket/prefix}. */
public final class Origins {
  private Origins() {}

  /** Opens with default retries (5 attempts) and up to 64 connections. */
  public static Origin open(String uri) {
    return open(uri, RetryPolicy.DEFAULT, 64);
  }

  /**
   * Opens the origin for {@code uri}, wrapped so transient failures are retried by {@code retry}.
   *
   * @param maxConnections how many connections the origin may hold open (the fetcher's parallelism is below it)
   * @throws IllegalArgumentException for an unknown scheme or a malformed URI
   */
  public static Origin open(String uri, RetryPolicy retry, int maxConnections) {
    URI u = toUri(uri);
    String scheme = u.getScheme() == null ? "file" : u.getScheme().toLowerCase(java.util.Locale.ROOT);
    Origin origin = switch (scheme) {
      case "file" -> new FileOrigin(u.getScheme() == null ? Path.of(uri) : Path.of(u));
      case "http", "https" -> new HttpOrigin(u, maxConnections, Duration.ofSeconds(10), Duration.ofSeconds(120));
      case "s3" -> new S3Origin(u, maxConnections);
      default -> throw new IllegalArgumentException(
          "unknown origin scheme '" + scheme + "' in " + uri + " (use file://, http(s):// or s3://)");
    };
    return new RetryingOrigin(origin, retry);
  }

  /** Accepts a plain path as a file origin, and URIs as they are. */
  static URI toUri(String uri) {
    if (!uri.contains("://")) {
      return Path.of(uri).toAbsolutePath().toUri();
    }
    try {
      return URI.create(uri);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("malformed origin URI '" + uri + "': " + e.getMessage(), e);
    }
  }

  static Map<String, String> query(URI uri) {
    Map<String, String> out = new LinkedHashMap<>();
    String q = uri.getRawQuery();
    if (q == null || q.isEmpty()) {
      return out;
    }
    for (String pair : q.split("&")) {
      int eq = pair.indexOf('=');
      String k = eq < 0 ? pair : pair.substring(0, eq);
      String v = eq < 0 ? "true" : pair.substring(eq + 1);
      out.put(URLDecoder.decode(k, StandardCharsets.UTF_8), URLDecoder.decode(v, StandardCharsets.UTF_8));
    }
    return out;
  }
}
