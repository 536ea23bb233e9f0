package dev.thaw.sidecar;

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

  HealthController(MountService mounts, SidecarMetrics metrics) {
    this.mounts = mounts;
    this.metrics = metrics;
  }

  /** The process answers. */
  @Get("/healthz")
  Map<String, Object> healthz() {
    return Map.of("status", "ok");
  }

  /** Ready to mount and serve: the cache is open. Standalone: no cluster to lose. */
  @Get("/readyz")
  Map<String, Object> readyz() {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("status", "ready");
    v.put("mode", "standalone");
    v.put("mounts", mounts.list().size());
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
