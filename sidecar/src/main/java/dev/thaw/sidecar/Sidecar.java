package dev.thaw.sidecar;

import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
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
   * context returned is running, its HTTP server listening. A setting that cannot work (a cache another process
   * holds, cluster mode without a token, a port in use) is an {@link IllegalStateException} saying so in one line.
   */
  public static ApplicationContext start(Map<String, Object> properties) {
    ApplicationContext context = null;
    try {
      // built, then started, so that a failed start can still be closed: what it opened (the cache) is let go
      context = ApplicationContext.builder().mainClass(Sidecar.class).banner(false).properties(properties).build();
      context.start();
      context.getBean(EmbeddedServer.class).start();
      return context;
    } catch (RuntimeException e) {
      if (context != null) {
        try {
          context.close();
        } catch (RuntimeException closing) {
          e.addSuppressed(closing);
        }
      }
      throw new IllegalStateException(innermostMessage(e), e);
    }
  }

  /** Thaw's version, from the jar's manifest (the build's version when run from classes): part of snapshot keys. */
  public static String version() {
    String v = Sidecar.class.getPackage().getImplementationVersion();
    return v == null ? "0.1.0-SNAPSHOT" : v;
  }

  /** The first cause's own words, past Micronaut's wrapping ("Error instantiating bean ... Path Taken: ..."). */
  private static String innermostMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    String m = t.getMessage();
    return m == null || m.isBlank() ? t.toString() : m;
  }
}
