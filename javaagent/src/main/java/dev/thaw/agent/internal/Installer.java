package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import java.lang.instrument.Instrumentation;

/**
 * Sets the agent up: its settings, the hooks, and the watch for the library classes it instruments, matched by name
 * (never loaded by the agent), so that an application without the libraries is left exactly as it was.
 */
public final class Installer {
  private Installer() {}

  public static void install(String options, Instrumentation instrumentation, boolean attached) {
    AgentConfig config = AgentConfig.from(options, System.getenv());
    SidecarClient sidecar = new SidecarClient(config);
    ModelLocations locations = new ModelLocations(config, sidecar);
    WarmReports warm = new WarmReports(sidecar, locations);
    ModelLoadHooks.install(locations, locations.whySkipped(), warm, warm);
    instrumentation.addTransformer(new LibraryTransformer(), attached);
    int mapped = config.mappings().size();
    System.err.println("thaw-agent: started" + (attached ? " (attached)" : "") + "; sidecar " + config.sidecar()
        + "; " + mapped + " model location" + (mapped == 1 ? "" : "s") + " mapped");
    if (attached && LibraryTransformer.retransformLoaded(instrumentation)) {
      System.err.println("thaw-agent: attached after ONNX Runtime was in use: the models it loaded before were "
          + "missed (not served through Thaw); later loads are");
    }
  }
}
