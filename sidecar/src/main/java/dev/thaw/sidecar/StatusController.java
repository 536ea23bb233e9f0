package dev.thaw.sidecar;

import dev.thaw.sidecar.cluster.ClusterMember;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Produces;
import io.swagger.v3.oas.annotations.Hidden;
import java.io.IOException;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;

/** The status page (mounts, cache, peers, plan, cold-start waterfalls) and the summary it reads. */
@Controller
final class StatusController {
  private final MountService mounts;
  private final ClusterMember cluster;

  StatusController(MountService mounts, ClusterMember cluster) {
    this.mounts = mounts;
    this.cluster = cluster;
  }

  /** The page: one self-contained HTML file that draws from the JSON endpoints every two seconds. */
  @Get
  @Hidden
  @Produces(MediaType.TEXT_HTML)
  byte[] page() throws IOException {
    try (InputStream in = StatusController.class.getResourceAsStream("/status/index.html")) {
      if (in == null) {
        throw new IOException("the build left no status/index.html on the class path");
      }
      return in.readAllBytes();
    }
  }

  /** The sidecar at a glance: its mode, its cache, its peers (none standalone), how many mounts. */
  @Get("/v1/status")
  Map<String, Object> status() {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("mode", cluster.clustered() ? "cluster" : "standalone");
    v.put("node", cluster.clustered() ? cluster.nodeId() : null);
    v.put("cache", mounts.cacheView());
    v.put("peers", cluster.peers());
    v.put("mounts", mounts.count());
    return v;
  }
}
