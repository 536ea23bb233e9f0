package dev.thaw.sidecar;

import dev.thaw.sidecar.cluster.ClusterMember;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Produces;
import java.io.IOException;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;

/** Liveness, readiness, Prometheus metrics and the OpenAPI document. */
@Controller
final class HealthController {
  static final String OPENAPI = "META-INF/swagger/thaw-sidecar-0.1.0.yml";

  private final MountService mounts;
  private final SidecarMetrics metrics;
  private final ClusterMember cluster;

  HealthController(MountService mounts, SidecarMetrics metrics, ClusterMember cluster) {
    this.mounts = mounts;
    this.metrics = metrics;
    this.cluster = cluster;
  }

  /** The process answers. */
  @Get("/healthz")
  Map<String, Object> healthz() {
    return Map.of("status", "ok");
  }

  /**
   * Ready to mount and serve: the cache is open. In cluster mode with etcd out of reach it still serves (200) and
   * says {@code degraded}, with why.
   */
  @Get("/readyz")
  Map<String, Object> readyz() {
    Map<String, Object> v = new LinkedHashMap<>();
    String degraded = cluster.degraded();
    v.put("status", degraded == null ? "ready" : "degraded");
    v.put("mode", cluster.clustered() ? "cluster" : "standalone");
    if (degraded != null) {
      v.put("reason", degraded);
    }
    if (cluster.clustered()) {
      v.put("leader", cluster.isLeader());
    }
    v.put("mounts", mounts.count());
    return v;
  }

  @Get("/metrics")
  @Produces("text/plain; version=0.0.4; charset=utf-8")
  String metrics() {
    return metrics.scrape();
  }

  /** The API as OpenAPI 3, generated from these controllers at build time. */
  @Get("/openapi.yml")
  @Produces("application/yaml")
  byte[] openApi() throws IOException {
    try (InputStream in = HealthController.class.getClassLoader().getResourceAsStream(OPENAPI)) {
      if (in == null) {
        throw new IOException("the build left no " + OPENAPI + " on the class path");
      }
      return in.readAllBytes();
    }
  }
}
