package dev.thaw.triton;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.List;
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
  public record Limits(int maxHeldPerModel, Duration loadTimeout, Duration idleUnload) {
    public Limits {
      if (maxHeldPerModel < 1) {
        throw new IllegalArgumentException("maxHeldPerModel must be at least 1, not " + maxHeldPerModel);
      }
      Objects.requireNonNull(loadTimeout, "loadTimeout");
      if (idleUnload.isNegative()) {
        throw new IllegalArgumentException("idleUnload must not be negative, not " + idleUnload);
      }
    }

    public Limits(int maxHeldPerModel, Duration loadTimeout) {
      this(maxHeldPerModel, loadTimeout, Duration.ZERO);
    }

    /** These limits, with idle models unloaded after {@code idle} ({@link Duration#ZERO}: never). */
    public Limits withIdleUnload(Duration idle) {
      return new Limits(maxHeldPerModel, loadTimeout, idle);
    }
  }

  /**
   * Up to 1 000 requests held per model, a load may take 10 minutes (large models from a cold origin), and idle
   * models stay loaded.
   */
  public static final Limits DEFAULT_LIMITS = new Limits(1_000, Duration.ofMinutes(10));

  /** Triton's gRPC endpoint (gRPC's generated blocking client). */
  private final GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub triton;
  private final Limits limits;
  private final Set<String> loaded = ConcurrentHashMap.newKeySet();
  private final ConcurrentHashMap<String, CompletableFuture<Void>> loading = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicInteger> held = new ConcurrentHashMap<>();
  private final AtomicInteger loadsStarted = new AtomicInteger();
  private final AtomicInteger unloads = new AtomicInteger();
  private final ExecutorService calls = Executors.newThreadPerTaskExecutor(
      Thread.ofVirtual().name("thaw-triton-load-", 0).factory());

  private final ManagedChannel channel;
  private final ConcurrentHashMap<String, Long> lastAsked = new ConcurrentHashMap<>(); // System.nanoTime()
  private final ScheduledExecutorService idleCheck; // null when idle models stay loaded

  private ModelLoads(ManagedChannel channel, Limits limits) {
    this.channel = channel;
    this.triton = GRPCInferenceServiceGrpc.newBlockingStub(channel);
    this.limits = limits;
    if (limits.idleUnload().isZero()) {
      this.idleCheck = null;
    } else {
      this.idleCheck = Executors.newSingleThreadScheduledExecutor(
          Thread.ofPlatform().daemon().name("thaw-triton-idle").factory());
      long every = Math.clamp(limits.idleUnload().toMillis() / 4, 50, 30_000);
      idleCheck.scheduleWithFixedDelay(this::unloadIdle, every, every, TimeUnit.MILLISECONDS);
    }
  }

  /**
   * Loads through Triton's gRPC endpoint at {@code target} ({@code host:port}), which both proxies' requests wait on.
   */
  public static ModelLoads connect(String target, Limits limits) {
    return new ModelLoads(NettyChannelBuilder.forTarget(Objects.requireNonNull(target, "target")).usePlaintext()
        .build(), Objects.requireNonNull(limits, "limits"));
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

  /** A client's load went through: the model is loaded. */
  void loadedBy(String model) {
    loaded.add(model);
  }

  /** A client's unload went through: the next request loads the model again. */
  void unloadedBy(String model) {
    loaded.remove(model);
  }

  private void load(String model) {
    try {
      if (triton.withDeadlineAfter(Duration.ofSeconds(30))
          .modelReady(ModelReadyRequest.newBuilder().setName(model).build()).getReady()) {
        loaded.add(model);
        return;
      }
      if (!inRepositories(model)) {
        return; // Triton answers for a model it does not have
      }
      long start = System.nanoTime();
      loadsStarted.incrementAndGet();
      log.info("loading model '{}' for its first request", model);
      triton.withDeadlineAfter(limits.loadTimeout())
          .repositoryModelLoad(RepositoryModelLoadRequest.newBuilder().setModelName(model).build());
      loaded.add(model);
      log.info("model '{}' loaded in {} ms", model, (System.nanoTime() - start) / 1_000_000);
    } catch (StatusRuntimeException e) {
      log.warn("loading model '{}' failed: {}", model, e.getStatus());
      throw new java.util.concurrent.CompletionException(Status.UNAVAILABLE.withDescription("failed to load model '"
          + model + "': " + (e.getStatus().getDescription() != null ? e.getStatus().getDescription()
          : e.getStatus().getCode())).withCause(e).asException());
    }
  }

  /** Unloads each model Thaw has seen loaded that nobody has asked for within the idle time. */
  private void unloadIdle() {
    long now = System.nanoTime();
    for (String model : List.copyOf(loaded)) {
      Long asked = lastAsked.get(model);
      if (asked == null || now - asked < limits.idleUnload().toNanos() || held(model) > 0) {
        continue;
      }
      loaded.remove(model); // a request from now on loads it again
      log.info("unloading model '{}': no request for {} s", model, limits.idleUnload().toSeconds());
      try {
        triton.withDeadlineAfter(Duration.ofMinutes(1))
            .repositoryModelUnload(RepositoryModelUnloadRequest.newBuilder().setModelName(model).build());
        unloads.incrementAndGet();
      } catch (StatusRuntimeException e) {
        log.warn("unloading idle model '{}' failed: {}", model, e.getStatus());
      }
    }
  }

  /** How many idle models Thaw has unloaded. */
  int idleUnloads() {
    return unloads.get();
  }

  private boolean inRepositories(String model) {
    RepositoryIndexResponse index = triton.withDeadlineAfter(Duration.ofSeconds(30))
        .repositoryIndex(RepositoryIndexRequest.getDefaultInstance());
    return index.getModelsList().stream().anyMatch(m -> m.getName().equals(model));
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
