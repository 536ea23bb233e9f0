package dev.thaw.sidecar;

import dev.thaw.sidecar.cluster.ClusterMember;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import java.util.Map;

/** The placement plan this sidecar follows: in cluster mode the leader's, with its revision; standalone none. */
@Controller("/v1/plan")
final class PlanController {
  private final ClusterMember cluster;

  PlanController(ClusterMember cluster) {
    this.cluster = cluster;
  }

  @Get
  Map<String, Object> plan() {
    return cluster.planView();
  }
}
