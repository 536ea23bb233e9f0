package dev.thaw.sidecar;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.sidecar.cluster.ClusterMember;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Put;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import java.util.Map;

/** How many replicas of each model the cluster wants: what the leader plans for (cluster mode only). */
@Controller("/v1/demand")
@ExecuteOn(TaskExecutors.BLOCKING)
final class DemandController {
  private final ClusterMember cluster;

  DemandController(ClusterMember cluster) {
    this.cluster = cluster;
  }

  /** A model's wanted replicas, with its size and boot time for the start costs. */
  record Demand(String model, Integer replicas, Long weightBytes, Double bootSeconds, String snapshot) {}

  @Put
  Map<String, Object> set(@Nullable @Body Demand d) throws Exception {
    requireCluster();
    if (d == null || d.model() == null || d.model().isBlank()) {
      throw ApiException.badField("model", "model is required: the NAME[:TAG] the replicas serve");
    }
    try {
      dev.thaw.store.ModelName.parse(d.model()); // NAME[:TAG] as everywhere else: llama/8b:v1 is one
    } catch (IllegalArgumentException e) {
      throw ApiException.badField("model", "model must be a NAME[:TAG] (" + e.getMessage() + "): " + d.model());
    }
    if (d.replicas() == null || d.replicas() < 0 || d.replicas() > 10_000) {
      throw ApiException.badField("replicas", "replicas is required, from 0 to 10000");
    }
    if (d.weightBytes() != null && d.weightBytes() < 0) {
      throw ApiException.badField("weight_bytes", "weight_bytes must not be negative");
    }
    if (d.bootSeconds() != null && !(d.bootSeconds() >= 0)) {
      throw ApiException.badField("boot_seconds", "boot_seconds must not be negative");
    }
    if (d.snapshot() != null) {
      try {
        dev.thaw.store.ModelName.parse("snapshots/" + d.snapshot() + ":x");
      } catch (IllegalArgumentException e) {
        throw ApiException.badField("snapshot", "not a snapshot name: " + d.snapshot());
      }
    }
    cluster.setDemand(d.model(), d.replicas(), d.weightBytes() == null ? 0 : d.weightBytes(),
        d.bootSeconds() == null ? 30 : d.bootSeconds(), d.snapshot());
    return Map.of("model", d.model(), "replicas", d.replicas());
  }

  @Get
  Map<String, JsonNode> list() throws Exception {
    requireCluster();
    return cluster.demand();
  }

  private void requireCluster() {
    if (!cluster.clustered()) {
      throw new ApiException(HttpStatus.CONFLICT, null, "standalone: demand is for cluster mode (start with --etcd)");
    }
    if (cluster.degraded() != null) {
      throw new ApiException(HttpStatus.SERVICE_UNAVAILABLE, null, cluster.degraded());
    }
  }
}
