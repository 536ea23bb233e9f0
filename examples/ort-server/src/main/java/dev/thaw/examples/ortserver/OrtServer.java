package dev.thaw.examples.ortserver;

import com.sun.net.httpserver.HttpServer;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.nio.NioIoHandler;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioServerSocketChannel;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small inference server on ONNX Runtime (CPU) that behaves like Triton on disk and on the wire: it serves a
 * Triton model repository ({@code <repo>/<model>/config.pbtxt}, {@code <repo>/<model>/<version>/model.onnx}) over
 * Triton's gRPC service ({@code inference.GRPCInferenceService}, with the standard {@code grpc.health.v1.Health}
 * beside it) and HTTP/REST v2 protocol.
 *
 * <p>Start-up follows Triton's: both endpoints listen first (the server is live), then the models to load at start
 * load in parallel, and the server is ready once every one of them is READY. A model that fails to load keeps the
 * server not ready, and the other models are served. Stderr gets one line per event, with prefixes that tools parse:
 *
 * <pre>
 * ort-server: started GRPCInferenceService at 127.0.0.1:8001
 * ort-server: started HTTPService at 127.0.0.1:8000
 * ort-server: loading model 'mlp' version 1 from /models/mlp
 * ort-server: model 'mlp' version 1 loaded in 850 ms
 * ort-server: model 'mlp' warmed up in 12 ms
 * ort-server: failed to load model 'broken': model file /models/broken/1/model.onnx does not exist
 * ort-server: ready in 1400 ms
 * </pre>
 *
 * "ready in" is printed once, when the server first becomes ready, counting from the process's start (exec).
 */
public final class OrtServer implements AutoCloseable {
  static final String NAME = "ort-server";
  static final List<String> EXTENSIONS = List.of("binary_tensor_data", "model_repository", "model_configuration");
  private static final int MAX_MESSAGE_BYTES = 1 << 30;
  private static final String NETTY_NO_NATIVE = "io.grpc.netty.shaded.io.netty.transport.noNative";

  private final ServerOptions options;
  private final ModelRepository repository;
  private final GrpcHealthService health;
  private final AtomicBoolean readyLogged = new AtomicBoolean();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final CountDownLatch startupDone = new CountDownLatch(1);
  private final CountDownLatch terminated = new CountDownLatch(1);
  private volatile boolean startupFinished;
  private Server grpc;
  private EventLoopGroup grpcBoss;
  private EventLoopGroup grpcWorkers;
  private HttpServer http;
  private HttpServer metrics;
  private ExecutorService httpExecutor;

  private OrtServer(ServerOptions options) {
    this.options = options;
    this.health = new GrpcHealthService(this::isReady);
    this.repository = new ModelRepository(options.modelRepository(), options.warmup(), options.ortNativeDir(),
        options.ortSessionConfig(), this::checkReady);
  }

  /**
   * Runs the server until SIGTERM or SIGINT. Exit status 2 for bad flags, 1 when the server cannot start (no model
   * repository, a port taken); each with a one-line message on stderr.
   */
  public static void main(String[] args) {
    ServerOptions options;
    try {
      options = ServerOptions.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(NAME + ": " + e.getMessage() + " (see --help)");
      System.exit(2);
      return;
    }
    if (options.help()) {
      System.out.print(ServerOptions.usage());
      return;
    }
    OrtServer server;
    try {
      server = start(options);
    } catch (IOException | UncheckedIOException e) {
      System.err.println(NAME + ": " + e.getMessage());
      System.exit(1);
      return;
    }
    Runtime.getRuntime().addShutdownHook(new Thread(server::close, "ort-server-shutdown"));
    server.awaitTermination();
  }

  /**
   * Starts a server: listens on both endpoints, then loads the models to load at start in the background. Returns
   * once the server is live.
   *
   * @throws IOException when the model repository is not a directory, or an endpoint cannot listen
   */
  public static OrtServer start(ServerOptions options) throws IOException {
    Path repo = options.modelRepository();
    if (!Files.isDirectory(repo)) {
      throw new IOException("model repository " + repo.toAbsolutePath() + " does not exist or is not a directory");
    }
    // Netty probes for its native epoll transport even when told to use NIO, unpacking a library into /tmp; the
    // server uses NIO (see listen), so the probe only costs time and leaves a file CRIU restores would miss.
    if (System.getProperty(NETTY_NO_NATIVE) == null) {
      System.setProperty(NETTY_NO_NATIVE, "true");
    }
    OrtServer server = new OrtServer(options);
    try {
      server.listen();
    } catch (IOException | RuntimeException e) {
      server.close();
      throw e;
    }
    server.loadStartupModels();
    return server;
  }

  /** The gRPC port (the one picked, when started with port 0). */
  public int grpcPort() {
    return grpc.getPort();
  }

  /** The HTTP port (the one picked, when started with port 0). */
  public int httpPort() {
    return http.getAddress().getPort();
  }

  /** The metrics port (the one picked, when started with port 0); -1 with {@code --allow-metrics=false}. */
  public int metricsPort() {
    return metrics == null ? -1 : metrics.getAddress().getPort();
  }

  /**
   * Whether the server is ready: its startup loads are done and each of those models is READY (or unloaded); with
   * {@code --strict-readiness=false}, whenever it is live.
   */
  public boolean isReady() {
    return !closed.get() && (!options.strictReadiness() || startupFinished && repository.allWantedReady());
  }

  /**
   * Waits until the models to load at start have loaded or failed.
   *
   * @return whether that happened within {@code timeout}
   */
  public boolean awaitStartup(Duration timeout) throws InterruptedException {
    return startupDone.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Stops listening, waits briefly for requests in flight, then closes every model's session. Idempotent. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      awaitTermination();
      return;
    }
    log("shutting down");
    try {
      health.shutdown(); // ends the health watches, which would otherwise hold the gRPC server's shutdown
      if (grpc != null) {
        grpc.shutdown();
      }
      if (http != null) {
        http.stop(1);
      }
      if (metrics != null) {
        metrics.stop(0);
      }
      if (grpc != null && !grpc.awaitTermination(5, TimeUnit.SECONDS)) {
        grpc.shutdownNow();
      }
    } catch (InterruptedException e) {
      grpc.shutdownNow();
      Thread.currentThread().interrupt();
    } finally {
      if (grpcBoss != null) {
        grpcBoss.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        grpcWorkers.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      }
      if (httpExecutor != null) {
        httpExecutor.shutdownNow();
      }
      repository.close();
      log("stopped");
      terminated.countDown();
    }
  }

  ModelRepository repository() {
    return repository;
  }

  /** Refuses model control requests in "none" mode, with Triton's error. */
  void checkModelControl() {
    if (options.modelControlMode() != ServerOptions.ModelControlMode.EXPLICIT) {
      throw InferenceError.unavailable("explicit model load / unload is not allowed if polling is enabled");
    }
  }

  static void log(String message) {
    System.err.println(NAME + ": " + message);
  }

  /** The server's version for server metadata: the jar's Maven version, or "dev" when run from classes. */
  static String version() {
    return Version.VALUE;
  }

  private void listen() throws IOException {
    InetSocketAddress grpcAddress = new InetSocketAddress(options.grpcAddress(), options.grpcPort());
    // Netty's NIO transport, not its native epoll one: epoll unpacks a native library into /tmp at every start (time
    // spent before listening, and a file a later CRIU restore would miss) for no gain at this server's load.
    grpcBoss = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory("ort-grpc-boss", true),
        NioIoHandler.newFactory());
    grpcWorkers = new MultiThreadIoEventLoopGroup(0, new DefaultThreadFactory("ort-grpc-worker", true),
        NioIoHandler.newFactory());
    grpc = NettyServerBuilder.forAddress(grpcAddress)
        .channelType(NioServerSocketChannel.class)
        .bossEventLoopGroup(grpcBoss)
        .workerEventLoopGroup(grpcWorkers)
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .addService(new GrpcInferenceService(this, repository))
        .addService(health)
        .build();
    try {
      grpc.start();
    } catch (IOException e) {
      throw new IOException("cannot listen for gRPC on " + options.grpcAddress() + ":" + options.grpcPort() + ": "
          + rootMessage(e), e);
    }
    log("started GRPCInferenceService at " + options.grpcAddress() + ":" + grpc.getPort());

    AtomicInteger threads = new AtomicInteger();
    httpExecutor = Executors.newCachedThreadPool(r -> {
      // Platform threads: inference runs in native code, which would pin a virtual thread's carrier.
      Thread t = new Thread(r, "ort-http-" + threads.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    try {
      http = HttpServer.create(new InetSocketAddress(options.httpAddress(), options.httpPort()), 128);
    } catch (IOException e) {
      throw new IOException("cannot listen for HTTP on " + options.httpAddress() + ":" + options.httpPort() + ": "
          + rootMessage(e), e);
    }
    http.createContext("/", new HttpInferenceService(this, repository));
    http.setExecutor(httpExecutor);
    http.start();
    log("started HTTPService at " + options.httpAddress() + ":" + httpPort());

    if (options.allowMetrics()) {
      try {
        metrics = HttpServer.create(new InetSocketAddress(options.metricsAddress(), options.metricsPort()), 16);
      } catch (IOException e) {
        throw new IOException("cannot listen for metrics on " + options.metricsAddress() + ":"
            + options.metricsPort() + ": " + rootMessage(e), e);
      }
      metrics.createContext("/metrics", new MetricsService(repository));
      metrics.setExecutor(httpExecutor);
      metrics.start();
      log("started Metrics Service at " + options.metricsAddress() + ":" + metricsPort());
    }
  }

  private void loadStartupModels() {
    Set<String> names = new LinkedHashSet<>();
    if (options.modelControlMode() == ServerOptions.ModelControlMode.NONE) {
      names.addAll(repository.modelNames());
    } else {
      for (String name : options.loadModels()) {
        if (name.equals("*")) {
          names.addAll(repository.modelNames());
        } else {
          names.add(name);
        }
      }
    }
    List<String> startup = List.copyOf(names);
    repository.expect(startup);
    if (startup.isEmpty()) {
      finishStartup();
      return;
    }
    Thread.ofPlatform().name("ort-startup").daemon().start(() -> {
      List<Thread> loaders = new ArrayList<>();
      for (String name : startup) {
        loaders.add(Thread.ofPlatform().name("ort-load-" + name).daemon().start(() -> {
          try {
            repository.load(name);
          } catch (InferenceError e) {
            // logged by the repository; the model stays UNAVAILABLE and the server not ready
          }
        }));
      }
      for (Thread loader : loaders) {
        try {
          loader.join();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
      finishStartup();
    });
  }

  private void finishStartup() {
    startupFinished = true;
    checkReady();
    startupDone.countDown();
  }

  private void checkReady() {
    if (isReady() && readyLogged.compareAndSet(false, true)) {
      log("ready in " + millisSinceProcessStart() + " ms");
    }
    health.readinessChanged();
  }

  private void awaitTermination() {
    try {
      terminated.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Milliseconds since this process was exec'd, from /proc (start time and uptime, both in 10 ms ticks): that
   * counts the JVM's own start-up, which {@code RuntimeMXBean.getStartTime()} (the fallback) leaves out.
   */
  static long millisSinceProcessStart() {
    try {
      String stat = Files.readString(Path.of("/proc/self/stat"), StandardCharsets.US_ASCII);
      // Fields after the command name (in parentheses, which may hold spaces): state is field 3, starttime 22.
      String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      long startTicks = Long.parseLong(fields[19]);
      String uptime = Files.readString(Path.of("/proc/uptime"), StandardCharsets.US_ASCII);
      double uptimeSeconds = Double.parseDouble(uptime.substring(0, uptime.indexOf(' ')));
      return Math.round(uptimeSeconds * 1000) - startTicks * 10; // USER_HZ is 100 on Linux
    } catch (IOException | RuntimeException e) {
      return System.currentTimeMillis() - ManagementFactory.getRuntimeMXBean().getStartTime();
    }
  }

  private static String rootMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null) {
      t = t.getCause();
    }
    return String.valueOf(t.getMessage());
  }

  /** Read on first use: nothing at start-up needs it. */
  private static final class Version {
    static final String VALUE = read();

    private static String read() {
      try (InputStream in = OrtServer.class.getResourceAsStream(
          "/META-INF/maven/dev.thaw/thaw-ort-server/pom.properties")) {
        if (in != null) {
          Properties p = new Properties();
          p.load(in);
          return p.getProperty("version", "dev");
        }
      } catch (IOException e) {
        // fall through
      }
      return "dev";
    }
  }
}
