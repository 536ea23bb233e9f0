package dev.thaw.triton;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Triton run behind Thaw: Triton starts on the repositories Thaw serves, with explicit model control, on loopback
 * ports; Thaw's proxies take Triton's public ports (the ones its command line asked for) and forward to it. Triton's
 * standard streams are the wrapper's; its exit status is the wrapper's result; {@link #stop} passes SIGTERM on.
 */
public final class TritonWrapper implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TritonWrapper.class);
  /** How long Triton may take to exit after SIGTERM before it is killed (Triton's own default exit timeout is 30 s). */
  static final Duration STOP_GRACE = Duration.ofSeconds(45);

  private final Process triton;
  private final List<AutoCloseable> proxies;
  private final ModelLoads loads;
  private final InternalPorts ports;

  private TritonWrapper(Process triton, List<AutoCloseable> proxies, ModelLoads loads, InternalPorts ports) {
    this.triton = triton;
    this.proxies = proxies;
    this.loads = loads;
    this.ports = ports;
  }

  /** The loopback ports of Triton's own endpoints, which only Thaw's proxies reach. */
  public record InternalPorts(int http, int grpc, int metrics) {
    /** Three free loopback ports. */
    public static InternalPorts pick() throws IOException {
      int[] p = loopbackPorts(3);
      return new InternalPorts(p[0], p[1], p[2]);
    }
  }

  /**
   * How Triton's process comes to be: started as a plain child ({@link #CHILD}, its standard streams the wrapper's),
   * or otherwise (in a PID namespace of its own so that it can be checkpointed, or restored from a snapshot), as long
   * as the {@link Process} returned gives Triton's pid, its exit status, and passes {@link Process#destroy} on as
   * SIGTERM.
   */
  @FunctionalInterface
  public interface Launcher {
    /** A child process with the wrapper's standard streams. */
    Launcher CHILD = command -> new ProcessBuilder(command).inheritIO().start();

    /** Starts Triton with {@code command} (the one {@link TritonCommandLine#tritonCommand} wrote). */
    Process start(List<String> command) throws IOException;
  }

  /**
   * Takes Triton's public ports, then starts Triton on {@code repositories} (one directory per repository of
   * {@code line}, in order). Returns once Triton's process has started; it becomes ready later, as Triton does.
   *
   * @throws IOException when a public port cannot be listened on or Triton cannot be started (nothing is left
   *     running)
   */
  public static TritonWrapper start(TritonCommandLine line, List<Path> repositories) throws IOException {
    return start(line, repositories, ModelLoads.DEFAULT_LIMITS);
  }

  /** As {@link #start(TritonCommandLine, List)}, with these limits on loads on first request. */
  public static TritonWrapper start(TritonCommandLine line, List<Path> repositories, ModelLoads.Limits limits)
      throws IOException {
    return start(line, repositories, limits, ModelLoads.NO_LISTENER);
  }

  /**
   * As {@link #start(TritonCommandLine, List, ModelLoads.Limits)}, telling {@code listener} as models load and unload
   * (a model's bytes are fetched as Triton is about to load it).
   */
  public static TritonWrapper start(TritonCommandLine line, List<Path> repositories, ModelLoads.Limits limits,
      ModelLoads.Listener listener) throws IOException {
    return start(line, repositories, limits, listener, InternalPorts.pick(), Launcher.CHILD);
  }

  /**
   * As {@link #start(TritonCommandLine, List, ModelLoads.Limits, ModelLoads.Listener)}, with Triton's endpoints on
   * these loopback ports and its process brought about by {@code launcher} once the public ports are taken.
   */
  public static TritonWrapper start(TritonCommandLine line, List<Path> repositories, ModelLoads.Limits limits,
      ModelLoads.Listener listener, InternalPorts ports, Launcher launcher) throws IOException {
    int[] internal = {ports.http(), ports.grpc(), ports.metrics()};
    List<AutoCloseable> proxies = new ArrayList<>();
    // Triton's own gRPC endpoint always runs (on loopback): loads on first request go through it
    ModelLoads loads = ModelLoads.connect("127.0.0.1:" + internal[1], limits, listener);
    proxies.add(loads);
    try {
      TritonCommandLine.Endpoint grpc = line.grpc();
      if (grpc.allowed()) {
        proxies.add(TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress(grpc.address(), grpc.port()),
            "127.0.0.1:" + internal[1], loads));
      }
      TritonCommandLine.Endpoint http = line.http();
      if (http.allowed()) {
        proxies.add(TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress(http.address(), http.port()),
            new InetSocketAddress(InetAddress.getLoopbackAddress(), internal[0]), loads));
      }
      TritonCommandLine.Endpoint metrics = line.metrics();
      if (metrics.allowed()) {
        proxies.add(TritonHttpProxy.start(new InetSocketAddress(metrics.address(), metrics.port()),
            new InetSocketAddress(InetAddress.getLoopbackAddress(), internal[2])));
      }
      List<String> command = line.tritonCommand(repositories, internal[0], internal[1], internal[2]);
      log.info("starting Triton: {}", String.join(" ", command));
      Process triton;
      try {
        triton = launcher.start(command);
      } catch (IOException e) {
        throw new IOException("cannot start Triton (" + line.executable() + "): " + e.getMessage(), e);
      }
      return new TritonWrapper(triton, proxies, loads, ports);
    } catch (IOException | RuntimeException e) {
      closeAll(proxies);
      throw e;
    }
  }

  /** The loopback ports Triton serves on. */
  public InternalPorts internalPorts() {
    return ports;
  }

  /**
   * Completes with the first inference answered successfully through the proxies from now on (with its JSON request
   * when it came over HTTP): Triton is warm. See {@link ModelLoads#firstInferenceAnswered}.
   */
  public java.util.concurrent.CompletableFuture<ModelLoads.Inference> firstInferenceAnswered() {
    return loads.firstInferenceAnswered();
  }

  /** Triton's process id. */
  public long pid() {
    return triton.pid();
  }

  /** Waits for Triton to exit and returns its exit status (128 + the signal's number when a signal ended it). */
  public int waitFor() throws InterruptedException {
    return triton.waitFor();
  }

  /**
   * Passes SIGTERM on to Triton and waits for it to exit, killing it when it has not within {@link #STOP_GRACE}.
   * Returns its exit status.
   */
  public int stop() throws InterruptedException {
    if (triton.isAlive()) {
      triton.destroy(); // SIGTERM: Triton unloads its models and exits
      if (!triton.waitFor(STOP_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
        log.warn("Triton (pid {}) did not exit {} s after SIGTERM; killing it", triton.pid(), STOP_GRACE.toSeconds());
        triton.destroyForcibly();
      }
    }
    return triton.waitFor();
  }

  /** Closes the public ports (Triton, if still running, is left alone). Idempotent. */
  public void closeProxies() {
    closeAll(proxies);
  }

  /** Stops Triton (as {@link #stop}) and closes the public ports. */
  @Override
  public void close() throws InterruptedException {
    try {
      stop();
    } finally {
      closeAll(proxies);
    }
  }

  private static void closeAll(List<AutoCloseable> proxies) {
    List<AutoCloseable> open;
    synchronized (proxies) {
      open = List.copyOf(proxies);
      proxies.clear();
    }
    for (AutoCloseable p : open.reversed()) { // the proxies before the loads they wait on
      try {
        p.close();
      } catch (Exception e) {
        log.warn("closing a proxy failed", e);
      }
    }
  }

  /** Free loopback ports for Triton's own endpoints, which only the proxies reach. */
  private static int[] loopbackPorts(int n) throws IOException {
    ServerSocket[] sockets = new ServerSocket[n];
    try {
      int[] ports = new int[n];
      for (int i = 0; i < n; i++) {
        sockets[i] = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        ports[i] = sockets[i].getLocalPort();
      }
      return ports;
    } finally {
      for (ServerSocket s : sockets) {
        if (s != null) {
          s.close();
        }
      }
    }
  }
}
