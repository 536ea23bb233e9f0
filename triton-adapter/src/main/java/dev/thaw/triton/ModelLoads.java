package dev.thaw.triton;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Load on first request: a request for a model of Triton's repositories that is not loaded waits while Triton loads
 * it ({@code RepositoryModelLoad}), one load per model however many requests wait. A model Triton's repositories do
 * not hold is not Thaw's business: its requests pass on for Triton to answer. Which models are loaded is learnt from
 * Triton ({@code ModelReady}) the first time a model is asked for, and kept as loads and unloads pass through.
 */
public final class ModelLoads implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ModelLoads.class);

  /** How a load ends for one waiting request. */
  public record Limits(int maxHeldPerModel, Duration loadTimeout) {
    public Limits {
      if (maxHeldPerModel < 1) {
        throw new IllegalArgumentException("maxHeldPerModel must be at least 1, not " + maxHeldPerModel);
      }
      Objects.requireNonNull(loadTimeout, "loadTimeout");
    }
  }

  /** Up to 1 000 requests held per model, and a load may take 10 minutes (large models from a cold origin). */
  public static final Limits DEFAULT_LIMITS = new Limits(1_000, Duration.ofMinutes(10));

  private final GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub triton;
  private final Limits limits;
  private final Set<String> loaded = ConcurrentHashMap.newKeySet();
  private final ConcurrentHashMap<String, CompletableFuture<Void>> loading = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicInteger> held = new ConcurrentHashMap<>();
  private final AtomicInteger loadsStarted = new AtomicInteger();
  private final ExecutorService calls = Executors.newThreadPerTaskExecutor(
      Thread.ofVirtual().name("thaw-triton-load-", 0).factory());

  private final ManagedChannel channel;

  private ModelLoads(ManagedChannel channel, Limits limits) {
    this.channel = channel;
    this.triton = GRPCInferenceServiceGrpc.newBlockingStub(channel);
    this.limits = limits;
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
    AtomicInteger waiting = held.computeIfAbsent(model, m -> new AtomicInteger());
    if (waiting.incrementAndGet() > limits.maxHeldPerModel()) {
      waiting.decrementAndGet();
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
    calls.shutdownNow();
    channel.shutdownNow();
  }
}
