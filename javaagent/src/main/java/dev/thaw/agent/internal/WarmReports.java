package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Tells the sidecar how a model read through its mount warms up ({@code POST /v1/agent/warm}): loaded (the cold
 * start's {@code server_ready}), then its first inference answered. The reports go from a thread of the agent's own,
 * never from the application's; a report that fails is said in one line.
 */
final class WarmReports implements java.util.function.BiConsumer<String, Object>,
    java.util.function.Consumer<Object> {
  private final SidecarClient sidecar;
  private final ModelLocations locations;
  private final Map<Object, String> awaitingFirstInference = new WeakHashMap<>(); // model -> its path
  private ExecutorService reports; // made at the first report: nothing at start

  WarmReports(SidecarClient sidecar, ModelLocations locations) {
    this.sidecar = sidecar;
    this.locations = locations;
  }

  @Override
  public void accept(String path, Object model) {
    loaded(path, model);
  }

  @Override
  public void accept(Object model) {
    inferred(model);
  }

  private synchronized ExecutorService reports() {
    if (reports == null) {
      reports = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "thaw-agent-reports");
        t.setDaemon(true);
        return t;
      });
      ExecutorService started = reports;
      // an application that answers and exits at once still has its reports sent, within a bound
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        started.shutdown();
        try {
          started.awaitTermination(3, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }, "thaw-agent-reports-flush"));
    }
    return reports;
  }

  void loaded(String path, Object model) {
    if (!locations.isMounted(path)) {
      return; // not a model Thaw serves
    }
    synchronized (awaitingFirstInference) {
      awaitingFirstInference.put(model, path);
      ModelLoadHooks.awaitingInference(true);
    }
    report(path, false);
  }

  void inferred(Object model) {
    String path;
    synchronized (awaitingFirstInference) {
      path = awaitingFirstInference.remove(model);
      if (awaitingFirstInference.isEmpty()) {
        ModelLoadHooks.awaitingInference(false);
      }
    }
    if (path != null) {
      report(path, true);
    }
  }

  private void report(String path, boolean firstInference) {
    long pid = ProcessHandle.current().pid();
    reports().execute(() -> {
      try {
        sidecar.warm(pid, path, firstInference);
      } catch (Exception e) {
        System.err.println("thaw-agent: could not tell the sidecar that " + path + (firstInference
            ? " answered its first inference: " : " is loaded: ") + e.getMessage());
      }
    });
  }
}
