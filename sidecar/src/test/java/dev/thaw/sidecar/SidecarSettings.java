package dev.thaw.sidecar;

import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/** The settings test sidecars start with: their directories under one of the test's, any free port. */
public final class SidecarSettings {
  public static final String TOKEN = "cluster-token-for-tests";

  private SidecarSettings() {}

  /** A standalone sidecar reading from {@code origin}, its mount root, cache and snapshots under {@code dir}. */
  public static Map<String, Object> standalone(Path dir, String origin) {
    Map<String, Object> p = new HashMap<>();
    p.put("thaw.api.port", -1);
    p.put("thaw.origin", origin);
    p.put("thaw.mount-root", dir.resolve("mounts").toString());
    p.put("thaw.cache-dir", dir.resolve("cache").toString());
    p.put("thaw.cache-max-bytes", 1L << 30);
    p.put("thaw.snapshots", dir.resolve("snapshots").toString());
    p.put("thaw.api.token-file", dir.resolve("api-token").toString());
    return p;
  }

  /** A request to {@code path} of the sidecar's control API, carrying its token. */
  public static HttpRequest.Builder api(ApplicationContext sidecar, String path) {
    return HttpRequest.newBuilder(sidecar.getBean(EmbeddedServer.class).getURI().resolve(path))
        .header("Authorization", bearer(sidecar));
  }

  /** The Authorization header's value for the sidecar's control API. */
  public static String bearer(ApplicationContext sidecar) {
    return "Bearer " + sidecar.getBean(ApiToken.class).value();
  }

  /**
   * A cluster member {@code node} of the cluster under etcd key {@code prefix}: the test token, its peer endpoint on
   * loopback at any free port, a lease of three seconds, two L4 GPUs.
   */
  public static Map<String, Object> member(Path dir, String origin, String etcd, String prefix, String node) {
    Map<String, Object> p = standalone(dir, origin);
    p.put("thaw.cluster.etcd", etcd);
    p.put("thaw.cluster.prefix", prefix);
    p.put("thaw.cluster.node-id", node);
    p.put("thaw.cluster.lease-ttl", "3s");
    p.put("thaw.cluster.token", TOKEN);
    p.put("thaw.cluster.peer-host", "127.0.0.1");
    p.put("thaw.cluster.peer-port", 0);
    p.put("thaw.cluster.gpu-model", "L4");
    p.put("thaw.cluster.gpu-count", 2);
    p.put("thaw.cluster.gpu-memory-bytes", 24L << 30);
    return p;
  }
}
