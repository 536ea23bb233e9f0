package dev.thaw.triton;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.ServerLiveRequest;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Load on first request: a request for a model of Triton's repositories that is not loaded waits while Triton loads
 * it ({@code RepositoryModelLoad}), one load per model however many requests wait; with an idle time set, a model
 * nobody has asked for that long is unloaded again. A model Triton's repositories do
 * not hold is not Thaw's business: its requests pass on for Triton to answer. Which models are loaded is learnt from
 * Triton ({@code ModelReady}) the first time a model is asked for, and kept as loads and unloads pass through.
 */
public final class ModelLoads implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ModelLoads.class);

  /**
   * How many requests may wait for one model's load, how long a load may take, and after how long without a request
   * a model Thaw has seen loaded is unloaded ({@link Duration#ZERO}: never).
   */
  public record Limits(int maxHeldPerModel, Duration loadTimeout, Duration idleUnload,
      Map<String, Duration> idleUnloadByModel) {
    public Limits {
      if (maxHeldPerModel < 1) {
        throw new IllegalArgumentException("maxHeldPerModel must be at least 1, not " + maxHeldPerModel);
      }
      Objects.requireNonNull(loadTimeout, "loadTimeout");
      checkIdle("idleUnload", idleUnload);
      idleUnloadByModel = Map.copyOf(idleUnloadByModel);
      idleUnloadByModel.forEach((model, idle) -> checkIdle("idleUnload of model '" + model + "'", idle));
    }

    public Limits(int maxHeldPerModel, Duration loadTimeout) {
      this(maxHeldPerModel, loadTimeout, Duration.ZERO, Map.of());
    }

    /** These limits, with idle models unloaded after {@code idle} ({@link Duration#ZERO}: never). */
    public Limits withIdleUnload(Duration idle) {
      return new Limits(maxHeldPerModel, loadTimeout, idle, idleUnloadByModel);
    }

    /** These limits, with {@code model} unloaded after {@code idle} without requests, whatever the others' time. */
    public Limits withIdleUnload(String model, Duration idle) {
      Map<String, Duration> byModel = new HashMap<>(idleUnloadByModel);
      byModel.put(Objects.requireNonNull(model, "model"), idle);
      return new Limits(maxHeldPerModel, loadTimeout, idleUnload, byModel);
    }

    /** How long {@code model} may go without a request before it is unloaded; {@link Duration#ZERO}: never. */
    public Duration idleUnloadOf(String model) {
      return idleUnloadByModel.getOrDefault(model, idleUnload);
    }

    /** Whether any model is ever unloaded for being idle. */
    boolean unloadsIdleModels() {
      return !idleUnload.isZero() || idleUnloadByModel.values().stream().anyMatch(d -> !d.isZero());
    }

    /** The shortest idle time of any model that has one. */
    Duration shortestIdleUnload() {
      return java.util.stream.Stream.concat(java.util.stream.Stream.of(idleUnload),
          idleUnloadByModel.values().stream()).filter(d -> !d.isZero()).min(Duration::compareTo).orElse(Duration.ZERO);
    }

    private static void checkIdle(String what, Duration idle) {
      if (idle.isNegative()) {
        throw new IllegalArgumentException(what + " must not be negative, not " + idle);
      }
    }
  }

  /**
   * What happens to models as they load and unload through Thaw, for whoever serves their bytes and records their
   * cold starts. Called on Thaw's threads, never while a lock is held; a method must return quickly (start work, do
   * not wait for it): requests wait on {@link #loading}.
   */
  public interface Listener {
    /**
     * Triton is about to be asked to load a model, for a request that found it unloaded or for a client's own load:
     * the moment to start fetching its bytes. {@code coldStart} has the model and when it was asked for.
     */
    default void loading(ColdStart coldStart) {}

    /**
     * Whether {@code model} is in a repository Thaw serves (then Triton's index need not be read to know it is
     * Triton's to load); false when the listener does not know.
     */
    default boolean serves(String model) {
      return false;
    }

    /** Triton loaded {@code model}; {@code coldStart} has its times so far. */
    default void loaded(String model, ColdStart coldStart) {}

    /** Triton failed to load {@code model}, for {@code reason}. */
    default void loadFailed(String model, String reason) {}

    /** {@code model} was unloaded: it was idle, or a client unloaded it. Its bytes are no longer being read. */
    default void unloaded(String model) {}

    /** The first inference after {@code model}'s load was answered: the cold start is complete. */
    default void servedFromZero(ColdStart coldStart) {}
  }

  /**
   * The times of one model's cold start, each {@link System#nanoTime()} ({@code 0}: not yet): the request (or
   * client's load) that started it, Triton's load call and its answer, and the first inference after it, sent to
   * Triton and answered.
   */
  public record ColdStart(String model, long askedNanos, long loadCalledNanos, long loadedNanos,
      long inferenceSentNanos, long inferenceAnsweredNanos) {
    /** From the request to the first inference's answer. */
    public Duration total() {
      return Duration.ofNanos(inferenceAnsweredNanos - askedNanos);
    }

    /** The time Triton spent: its load, and the first inference. */
    public Duration inTriton() {
      return Duration.ofNanos((loadedNanos - loadCalledNanos) + (inferenceAnsweredNanos - inferenceSentNanos));
    }

    /** Thaw's own share: everything but Triton's (the checks, the hold, forwarding). */
    public Duration inThaw() {
      return total().minus(inTriton());
    }

    /** Thaw's share before Triton's load call: the checks (is it loaded, is it in the repositories), the listener. */
    public Duration beforeLoad() {
      return Duration.ofNanos(loadCalledNanos - askedNanos);
    }

    /** Thaw's share between Triton's answer to the load and the held request reaching Triton. */
    public Duration handOff() {
      return Duration.ofNanos(inferenceSentNanos - loadedNanos);
    }

    ColdStart withLoaded(long nanos) {
      return new ColdStart(model, askedNanos, loadCalledNanos, nanos, 0, 0);
    }

    ColdStart withInference(long sent, long answered) {
      return new ColdStart(model, askedNanos, loadCalledNanos, loadedNanos, sent, answered);
    }
  }

  /**
   * An inference the proxies saw answered successfully: its model, and for one over HTTP with a JSON body, the
   * request's path and body (both null for gRPC, and for HTTP with a binary body or one over {@link
   * #RECORDED_BODY_LIMIT}).
   */
  public record Inference(String model, String path, byte[] body) {
    /** Whether the request itself was recorded (an HTTP JSON request), so it can be asked again as it was. */
    public boolean recorded() {
      return path != null && body != null;
    }
  }

  /** The largest HTTP request body kept for {@link #firstInferenceAnswered}. */
  public static final int RECORDED_BODY_LIMIT = 1 << 20;

  /** Listens to nothing. */
  public static final Listener NO_LISTENER = new Listener() {};

  /**
   * Up to 1 000 requests held per model, a load may take 10 minutes (large models from a cold origin), and idle
   * models stay loaded.
   */
  public static final Limits DEFAULT_LIMITS = new Limits(1_000, Duration.ofMinutes(10));

  /** The limits in force. */
  public Limits limits() {
    return limits;
  }

  private final Limits limits;
  private final Set<String> loaded = ConcurrentHashMap.newKeySet();
  private final ConcurrentHashMap<String, CompletableFuture<Void>> loading = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicInteger> held = new ConcurrentHashMap<>();
  private final AtomicInteger loadsStarted = new AtomicInteger();
  private final AtomicInteger unloads = new AtomicInteger();
  private final ExecutorService calls = Executors.newThreadPerTaskExecutor(
      Thread.ofVirtual().name("thaw-triton-load-", 0).factory());

  private final ManagedChannel channel;
  private final Listener listener;
  private final ConcurrentHashMap<String, Long> lastAsked = new ConcurrentHashMap<>(); // System.nanoTime()
  private final ScheduledExecutorService idleCheck; // null when idle models stay loaded
  // cold starts: loads under way (by request or client), then loaded models whose first inference is still to come
  private final ConcurrentHashMap<String, ColdStart> coldStarts = new ConcurrentHashMap<>();
  // the first inference answered, for whoever asked (null: nobody asked, and the proxies record nothing)
  private volatile CompletableFuture<Inference> firstAnswered;

  private ModelLoads(ManagedChannel channel, Limits limits, Listener listener) {
    this.channel = channel;
    this.limits = limits;
    this.listener = listener;
    if (!limits.unloadsIdleModels()) {
      this.idleCheck = null;
    } else {
      this.idleCheck = Executors.newSingleThreadScheduledExecutor(
          Thread.ofPlatform().daemon().name("thaw-triton-idle").factory());
      long every = Math.clamp(limits.shortestIdleUnload().toMillis() / 4, 50, 30_000);
      idleCheck.scheduleWithFixedDelay(this::unloadIdle, every, every, TimeUnit.MILLISECONDS);
    }
  }

  /**
   * Loads through Triton's gRPC endpoint at {@code target} ({@code host:port}), which both proxies' requests wait on.
   */
  public static ModelLoads connect(String target, Limits limits) {
    return connect(target, limits, NO_LISTENER);
  }

  /** As {@link #connect(String, Limits)}, telling {@code listener} what happens to models. */
  public static ModelLoads connect(String target, Limits limits, Listener listener) {
    return new ModelLoads(NettyChannelBuilder.forTarget(Objects.requireNonNull(target, "target")).usePlaintext()
        .build(), Objects.requireNonNull(limits, "limits"), Objects.requireNonNull(listener, "listener"));
  }

  /**
   * Completes when {@code model} may be asked for: it is loaded, or Triton's repositories do not hold it. Fails with
   * a {@link StatusException}: RESOURCE_EXHAUSTED when too many requests already wait for it, UNAVAILABLE naming the
   * model and Triton's reason when the load fails. Every call must be followed by {@link #release} once the request
   * stops waiting.
   */
  CompletableFuture<Void> whenServable(String model) {
    if (idleCheck != null) { // the time of each request is kept only where idle models are unloaded
      lastAsked.put(model, System.nanoTime());
    }
    AtomicInteger waiting = held.computeIfAbsent(model, m -> new AtomicInteger());
    if (waiting.incrementAndGet() > limits.maxHeldPerModel()) { // the caller's release takes this one back too
      return CompletableFuture.failedFuture(Status.RESOURCE_EXHAUSTED.withDescription("model '" + model
          + "' is loading and " + limits.maxHeldPerModel() + " requests already wait for it").asException());
    }
    if (loaded.contains(model)) {
      return CompletableFuture.completedFuture(null);
    }
    return loading.computeIfAbsent(model, m -> CompletableFuture.runAsync(() -> load(m), calls)
        .whenComplete((ok, failure) -> loading.remove(m)));
  }

  /** The request that called {@link #whenServable} no longer waits. */
  void release(String model) {
    AtomicInteger waiting = held.get(model);
    if (waiting != null) {
      waiting.decrementAndGet();
    }
  }

  /** A client asks Triton to load {@code model}: its bytes are asked for first, and its cold start timed. */
  void loadingBy(String model) {
    long now = System.nanoTime();
    ColdStart started = new ColdStart(model, now, now, 0, 0, 0);
    coldStarts.put(model, started);
    tell(() -> listener.loading(started));
  }

  /** A client's load went through: the model is loaded. */
  void loadedBy(String model) {
    loaded.add(model);
    ColdStart c = coldStarts.computeIfPresent(model, (m, started) -> started.loadedNanos() == 0
        ? started.withLoaded(System.nanoTime()) : started);
    if (c != null) {
      tell(() -> listener.loaded(model, c));
    }
  }

  /** A client's load failed with {@code reason}. */
  void loadFailedBy(String model, String reason) {
    if (coldStarts.remove(model) != null) {
      tell(() -> listener.loadFailed(model, reason));
    }
  }

  /** A client's unload went through: the next request loads the model again. */
  void unloadedBy(String model) {
    loaded.remove(model);
    coldStarts.remove(model);
    tell(() -> listener.unloaded(model));
  }

  /**
   * Whether an inference for {@code model} now would be its first since its load: the proxy then times it and
   * reports its answer to {@link #inferenceAnswered}. Cheap when no cold start is under way.
   */
  boolean awaitsFirstInference(String model) {
    if (coldStarts.isEmpty()) {
      return false;
    }
    ColdStart c = coldStarts.get(model);
    return c != null && c.loadedNanos() != 0;
  }

  /** An inference for {@code model} sent to Triton at {@code sentNanos} was answered successfully now. */
  void inferenceAnswered(String model, long sentNanos) {
    long now = System.nanoTime();
    ColdStart[] done = new ColdStart[1];
    coldStarts.computeIfPresent(model, (m, c) -> {
      if (c.loadedNanos() == 0) {
        return c; // loading again (unloaded meanwhile): this answer is not that load's
      }
      done[0] = c.withInference(Math.max(sentNanos, c.loadedNanos()), now);
      return null;
    });
    if (done[0] != null) {
      ColdStart c = done[0];
      log.info("model '{}' served from zero in {} ms: Triton's load and first inference {} ms, Thaw's share {} ms",
          model, c.total().toMillis(), c.inTriton().toMillis(), c.inThaw().toMillis());
      tell(() -> listener.servedFromZero(c));
    }
  }

  /**
   * Opens the connection to Triton ahead of the first load, so that load does not pay for it: called as clients'
   * calls arrive (a readiness probe comes before the first inference). Cheap after the first time.
   */
  void warm() {
    if (!warm) {
      warm = true;
      // a first call sets up the connection and loads the protocol's classes (tens of milliseconds in a new JVM);
      // whether Triton answers it does not matter
      calls.execute(() -> {
        try {
          TritonCalls.call(channel, GRPCInferenceServiceGrpc.getServerLiveMethod(),
              ServerLiveRequest.getDefaultInstance(), Duration.ofSeconds(5));
        } catch (StatusRuntimeException notYet) {
          // Triton is still starting: the first load resets the connection's back-off
        }
      });
    }
  }

  private volatile boolean warm;

  /**
   * Completes with the first inference answered successfully from now on, through either proxy ({@code ModelInfer}
   * over gRPC; {@code POST /v2/models/NAME[/versions/V]/infer} over HTTP, with its request when it is JSON): the
   * moment Triton is warm. Until it completes the HTTP proxy keeps a copy of each inference request's JSON body, up to
   * {@link #RECORDED_BODY_LIMIT}; nothing is kept when nobody asks.
   */
  public synchronized CompletableFuture<Inference> firstInferenceAnswered() {
    if (firstAnswered == null) {
      firstAnswered = new CompletableFuture<>();
    }
    return firstAnswered;
  }

  /** Whether an inference answered now is wanted by {@link #firstInferenceAnswered} (cheap: one volatile read). */
  boolean wantsAnInference() {
    CompletableFuture<Inference> f = firstAnswered;
    return f != null && !f.isDone();
  }

  /** An inference was answered successfully. */
  void inferenceSucceeded(Inference inference) {
    CompletableFuture<Inference> f = firstAnswered;
    if (f != null && !f.isDone()) {
      try {
        calls.execute(() -> f.complete(inference)); // whoever waits runs on Thaw's threads, never a proxy's
      } catch (java.util.concurrent.RejectedExecutionException closed) {
        // closing: nobody is served any more
      }
    }
  }

  private void load(String model) {
    long asked = System.nanoTime();
    try {
      if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
        channel.resetConnectBackoff(); // Triton was away: try it now, not after a back-off grown meanwhile
      }
      // the calls wait (within their deadlines) for a connection: Triton may still be starting, as a request that
      // came with the readiness probes finds it
      if (TritonCalls.callWhenConnected(channel, GRPCInferenceServiceGrpc.getModelReadyMethod(),
          ModelReadyRequest.newBuilder().setName(model).build(), Duration.ofSeconds(30)).getReady()) {
        loaded.add(model);
        return;
      }
      // a model of the repositories Thaw serves needs no look at Triton's index (which reads every repository)
      if (!listener.serves(model) && !inRepositories(model)) {
        return; // Triton answers for a model it does not have
      }
      loadsStarted.incrementAndGet();
      log.info("loading model '{}' for its first request", model);
      ColdStart starting = new ColdStart(model, asked, 0, 0, 0, 0);
      tell(() -> listener.loading(starting));
      long called = System.nanoTime();
      coldStarts.put(model, new ColdStart(model, asked, called, 0, 0, 0));
      TritonCalls.callWhenConnected(channel, GRPCInferenceServiceGrpc.getRepositoryModelLoadMethod(),
          RepositoryModelLoadRequest.newBuilder().setModelName(model).build(), limits.loadTimeout());
      long done = System.nanoTime();
      ColdStart c = coldStarts.computeIfPresent(model, (m, started) -> started.withLoaded(done));
      loaded.add(model);
      log.info("model '{}' loaded in {} ms", model, (done - called) / 1_000_000);
      if (c != null) {
        tell(() -> listener.loaded(model, c));
      }
    } catch (StatusRuntimeException e) {
      log.warn("loading model '{}' failed: {}", model, e.getStatus());
      String reason = e.getStatus().getDescription() != null ? e.getStatus().getDescription()
          : e.getStatus().getCode().toString();
      if (coldStarts.remove(model) != null) {
        tell(() -> listener.loadFailed(model, reason));
      }
      // a load that outlasts its time is a timeout (504 over HTTP), any other failure an unavailable model (503)
      Status failed = e.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED
          ? Status.DEADLINE_EXCEEDED.withDescription("model '" + model + "' did not load within "
              + limits.loadTimeout().toSeconds() + " s: " + reason)
          : Status.UNAVAILABLE.withDescription("failed to load model '" + model + "': " + reason);
      throw new java.util.concurrent.CompletionException(failed.withCause(e).asException());
    }
  }

  /** Tells the listener; a listener that throws is logged, never lets a load fail. */
  private void tell(Runnable call) {
    try {
      call.run();
    } catch (RuntimeException e) {
      log.warn("a model listener failed", e);
    }
  }

  private boolean inRepositories(String model) {
    return TritonCalls.callWhenConnected(channel, GRPCInferenceServiceGrpc.getRepositoryIndexMethod(),
        RepositoryIndexRequest.getDefaultInstance(), Duration.ofSeconds(30)).getModelsList().stream()
        .anyMatch(m -> m.getName().equals(model));
  }

  /** Unloads each model Thaw has seen loaded that nobody has asked for within the idle time. */
  private void unloadIdle() {
    long now = System.nanoTime();
    for (String model : List.copyOf(loaded)) {
      Long asked = lastAsked.get(model);
      Duration idle = limits.idleUnloadOf(model);
      if (idle.isZero() || asked == null || now - asked < idle.toNanos() || held(model) > 0) {
        continue;
      }
      loaded.remove(model); // a request from now on loads it again
      coldStarts.remove(model);
      log.info("unloading model '{}': no request for {} ms", model, idle.toMillis());
      try {
        TritonCalls.callWhenConnected(channel, GRPCInferenceServiceGrpc.getRepositoryModelUnloadMethod(),
            RepositoryModelUnloadRequest.newBuilder().setModelName(model).build(), Duration.ofMinutes(1));
        unloads.incrementAndGet();
        tell(() -> listener.unloaded(model));
      } catch (StatusRuntimeException e) {
        log.warn("unloading idle model '{}' failed: {}", model, e.getStatus());
      }
    }
  }

  /** How many idle models Thaw has unloaded. */
  int idleUnloads() {
    return unloads.get();
  }

  /** How many requests wait for {@code model} now. */
  int held(String model) {
    AtomicInteger waiting = held.get(model);
    return waiting == null ? 0 : waiting.get();
  }

  /** How many loads Thaw has asked Triton for. */
  int loadsStarted() {
    return loadsStarted.get();
  }

  /** Stops loading; requests still waiting fail. */
  @Override
  public void close() {
    if (idleCheck != null) {
      idleCheck.shutdownNow();
    }
    calls.shutdownNow();
    channel.shutdownNow();
  }
}
