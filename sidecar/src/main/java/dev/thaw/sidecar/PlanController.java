package dev.thaw.sidecar;

import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import java.util.LinkedHashMap;
import java.util.Map;

/** The placement plan this sidecar follows: in cluster mode the leader's, with its revision; standalone none. */
@Controller("/v1/plan")
final class PlanController {
  @Get
  Map<String, Object> plan() {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("mode", "standalone");
    v.put("revision", 0);
    v.put("plan", null);
    v.put("note", "standalone: no cluster, so no plan; start with --etcd for cluster mode");
    return v;
  }
}
