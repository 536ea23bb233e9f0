package dev.thaw.sidecar;

import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.Micronaut;
import io.swagger.v3.oas.annotations.OpenAPIDefinition;
import io.swagger.v3.oas.annotations.info.Info;
import java.util.Map;

/**
 * The sidecar service: Thaw's REST API beside an inference server (docs/api.md). Standalone unless cluster settings
 * are given: one chunk cache, one origin, no etcd.
 */
@OpenAPIDefinition(info = @Info(title = "thaw-sidecar", version = "0.1.0",
    description = "Mount models that stream on demand, follow their cold starts, and see the sidecar's state."))
public final class Sidecar {
  private Sidecar() {}

  /**
   * Starts the service with {@code properties} over application.yml and the environment (they win over both); the
   * context returned is running, its HTTP server listening.
   */
  public static ApplicationContext start(Map<String, Object> properties) {
    return Micronaut.build(new String[0])
        .mainClass(Sidecar.class)
        .banner(false)
        .properties(properties)
        .start();
  }
}
