package dev.thaw.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.sidecar.ApiToken;
import dev.thaw.sidecar.Sidecar;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * A sidecar in the bench's JVM with an empty chunk cache, mounting through its REST API as a server's pod does. Its
 * S3 origin's credentials are the bench's (S3Proxy runs with auth off). Sidecars started one after another in one
 * JVM share its loaded classes and compiled code, as a long-running sidecar has them after its first mounts.
 */
final class RunningSidecar implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final ApplicationContext context;
  private final HttpClient http = HttpClient.newHttpClient();
  private final URI base;
  private final String token;

  /** A mount the sidecar made: where it is and its id for {@link #unmount}. */
  record Mount(String id, Path mountpoint) {}

  private RunningSidecar(ApplicationContext context) {
    this.context = context;
    this.base = context.getBean(EmbeddedServer.class).getURI();
    this.token = context.getBean(ApiToken.class).value();
  }

  /** Starts one reading NAME[:TAG] models from {@code origin}, its cache and mounts under {@code dir}. */
  static RunningSidecar start(String origin, Path dir) {
    System.setProperty("aws.accessKeyId", MountBench.ACCESS_KEY);
    System.setProperty("aws.secretAccessKey", MountBench.SECRET_KEY);
    System.setProperty("aws.region", "us-east-1");
    Map<String, Object> p = new HashMap<>();
    p.put("thaw.api.port", -1);
    p.put("thaw.origin", origin);
    p.put("thaw.mount-root", dir.resolve("mounts").toString());
    p.put("thaw.cache-dir", dir.resolve("cache").toString());
    p.put("thaw.api.token-file", dir.resolve("api-token").toString());
    return new RunningSidecar(Sidecar.start(p));
  }

  /** {@code POST /v1/mounts}: returns when the sidecar answers 201, with the mount it made. */
  Mount mount(String source, String prefetch) throws IOException, InterruptedException {
    HttpResponse<String> made = http.send(HttpRequest.newBuilder(base.resolve("/v1/mounts"))
        .header("Authorization", "Bearer " + token).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(
            JSON.writeValueAsString(Map.of("source", source, "prefetch", prefetch))))
        .build(), HttpResponse.BodyHandlers.ofString());
    if (made.statusCode() != 201) {
      throw new IOException("POST /v1/mounts answered " + made.statusCode() + ": " + made.body());
    }
    JsonNode m = JSON.readTree(made.body());
    return new Mount(m.get("id").asText(), Path.of(m.get("mountpoint").asText()));
  }

  /** {@code DELETE /v1/mounts/ID}. */
  void unmount(Mount m) throws IOException, InterruptedException {
    HttpResponse<String> r = http.send(HttpRequest.newBuilder(base.resolve("/v1/mounts/" + m.id()))
        .header("Authorization", "Bearer " + token).DELETE().build(), HttpResponse.BodyHandlers.ofString());
    if (r.statusCode() != 204) {
      throw new IOException("DELETE /v1/mounts/" + m.id() + " answered " + r.statusCode() + ": " + r.body());
    }
  }

  /**
   * Waits until {@code file} (on one of this sidecar's mounts) exists, as a server's first look at its model would.
   *
   * @return milliseconds from {@code t0} ({@link System#nanoTime()}, when the mount was asked for)
   */
  static double awaitVisible(Path file, long t0, long timeoutMs) throws IOException {
    while (!java.nio.file.Files.exists(file)) {
      if (System.nanoTime() - t0 > timeoutMs * 1_000_000L) {
        throw new IOException(file + " did not appear within " + timeoutMs + " ms of POST /v1/mounts");
      }
      java.util.concurrent.locks.LockSupport.parkNanos(100_000);
    }
    return (System.nanoTime() - t0) / 1e6;
  }

  @Override
  public void close() {
    context.close();
  }
}
