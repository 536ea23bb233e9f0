package dev.thaw.sidecar;

import dev.thaw.store.AccessProfile;
import dev.thaw.triton.ModelLoads;
import dev.thaw.triton.TritonCommandLine;
import dev.thaw.triton.TritonGrpcProxy;
import dev.thaw.triton.TritonHttpProxy;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import jakarta.annotation.PreDestroy;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The sidecar in front of a Triton container ({@code thaw.triton}): Thaw mounts Triton's repositories, serves
 * Triton's public ports (Triton itself listens on others, {@code upstream-http} and {@code upstream-grpc}), and loads
 * each model on its first request, prefetching its part of the repository's profile as Triton loads it. Each load is
 * a cold start on {@code /v1/coldstarts} and the status page (mounted, first byte of the model, loaded, first
 * inference) and in the sidecar's metrics; the repositories' grown profiles are saved when the sidecar stops.
 */
@Context
@Requires(property = "thaw.triton.enabled", value = "true")
final class TritonFront implements ModelLoads.Listener, AutoCloseable {
  private static final Logger LOG = Logger.getLogger(TritonFront.class.getName());

  private final MountService mounts;
  private final ColdStartLog coldStarts;
  private final List<String> mountIds = new ArrayList<>();
  private final TritonRepositories repositories;
  private final ModelLoads loads;
  private final List<AutoCloseable> proxies = new ArrayList<>();
  private final Map<String, ColdStartLog.ColdStart> underWay = new ConcurrentHashMap<>();
  private final Counter loaded;
  private final Counter failed;
  private final Counter unloaded;
  private final Timer servedFromZero;
  private final Timer servedFromZeroInTriton;
  private final Timer servedFromZeroInThaw;
  private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
  private TritonGrpcProxy grpc;
  private TritonHttpProxy http;

  TritonFront(TritonConfig config, MountService mounts, ColdStartLog coldStarts, SidecarMetrics metrics)
      throws IOException {
    this.mounts = mounts;
    this.coldStarts = coldStarts;
    ModelLoads.Limits limits = new ModelLoads.Limits(config.getMaxHeldPerModel(), config.getLoadTimeout())
        .withIdleUnload(config.getIdleUnload());
    for (String entry : config.getModelIdleUnload()) {
      var idle = TritonConfig.modelIdleUnload(entry);
      limits = limits.withIdleUnload(idle.getKey(), idle.getValue());
    }
    List<TritonRepositories.Repository> served = new ArrayList<>();
    try {
      int i = 0;
      for (String given : config.getRepositories()) {
        TritonCommandLine.Repository r = TritonCommandLine.Repository.parse(given, System.getenv());
        if (!r.mounted()) {
          throw new IllegalArgumentException("thaw.triton.repositories: " + given + " is a local directory; give it "
              + "to Triton as it is (Thaw mounts s3:// and thaw:// repositories)");
        }
        MountService.MountInfo m = mounts.mountConfigured(r.source(), config.getMountPath() + "/repository-" + i++);
        mountIds.add(m.id());
        served.add(mounts.served(m.id(), given));
      }
      this.repositories = new TritonRepositories(served);
      this.loads = ModelLoads.connect(config.getUpstreamGrpc(), limits, this);
      proxies.add(loads);
      if (config.getGrpcPort() >= 0) {
        grpc = TritonGrpcProxy.startLoadingOnFirstRequest(new InetSocketAddress(config.getAddress(),
            config.getGrpcPort()), config.getUpstreamGrpc(), loads);
        proxies.add(grpc);
      }
      if (config.getHttpPort() >= 0) {
        http = TritonHttpProxy.startLoadingOnFirstRequest(new InetSocketAddress(config.getAddress(),
            config.getHttpPort()), address("thaw.triton.upstream-http", config.getUpstreamHttp()), loads);
        proxies.add(http);
      }
    } catch (IOException | RuntimeException e) {
      closeProxies();
      mountIds.forEach(this::unmountQuietly);
      throw e;
    }
    var registry = metrics.registry();
    loaded = Counter.builder("thaw.triton.loads").tag("outcome", "loaded")
        .description("Model loads Thaw saw through Triton's ports, by outcome").register(registry);
    failed = Counter.builder("thaw.triton.loads").tag("outcome", "failed")
        .description("Model loads Thaw saw through Triton's ports, by outcome").register(registry);
    unloaded = Counter.builder("thaw.triton.unloads").description("Models unloaded: idle, or by a client")
        .register(registry);
    servedFromZero = Timer.builder("thaw.triton.served_from_zero").tag("part", "total")
        .description("From a request for an unloaded model to its first answer, and Triton's and Thaw's parts")
        .register(registry);
    servedFromZeroInTriton = Timer.builder("thaw.triton.served_from_zero").tag("part", "triton")
        .description("From a request for an unloaded model to its first answer, and Triton's and Thaw's parts")
        .register(registry);
    servedFromZeroInThaw = Timer.builder("thaw.triton.served_from_zero").tag("part", "thaw")
        .description("From a request for an unloaded model to its first answer, and Triton's and Thaw's parts")
        .register(registry);
    LOG.info(() -> "event=triton_front repositories=" + served.stream().map(r -> r.given() + "@" + r.at()).toList()
        + " grpc=" + (grpc == null ? "off" : config.getAddress() + ":" + grpc.port()) + " http="
        + (http == null ? "off" : config.getAddress() + ":" + http.port()) + " upstream_grpc="
        + config.getUpstreamGrpc() + " upstream_http=" + config.getUpstreamHttp());
  }

  /** The port Thaw serves Triton's gRPC on; empty when off. */
  Optional<Integer> grpcPort() {
    return Optional.ofNullable(grpc).map(TritonGrpcProxy::port);
  }

  /** The port Thaw serves Triton's HTTP on; empty when off. */
  Optional<Integer> httpPort() {
    return Optional.ofNullable(http).map(TritonHttpProxy::port);
  }

  @Override
  public boolean serves(String model) {
    return repositories.serves(model);
  }

  @Override
  public void loading(ModelLoads.ColdStart start) {
    String model = start.model();
    int chunks = repositories.prefetch(model);
    repositories.of(model).ifPresent(r -> {
      String mountId = mountIds.get(repositories.repositories().indexOf(r));
      long read0 = r.reader().bytesRead();
      long cached0 = r.reader().bytesFromCache();
      long fetched0 = r.reader().bytesFetched();
      ColdStartLog.ColdStart cs = coldStarts.begin(model, mountId, () -> Map.of(
          "read", r.reader().bytesRead() - read0, "read_from_cache", r.reader().bytesFromCache() - cached0,
          "fetched_from_origin", r.reader().bytesFetched() - fetched0), start.askedNanos());
      cs.mark("mounted", start.askedNanos()); // the repository was mounted before the request
      r.reader().firstReadUnder(model).thenAccept(at -> cs.mark("first_byte", at));
      underWay.put(model, cs);
      LOG.info(() -> "event=triton_model_loading model=" + model + " cold_start=" + cs.id() + " prefetch_chunks="
          + chunks);
    });
  }

  @Override
  public void loaded(String model, ModelLoads.ColdStart c) {
    loaded.increment();
    ColdStartLog.ColdStart cs = underWay.get(model);
    if (cs != null) {
      cs.mark("server_ready", c.loadedNanos());
    }
  }

  @Override
  public void loadFailed(String model, String reason) {
    failed.increment();
    underWay.remove(model);
    LOG.warning(() -> "event=triton_model_load_failed model=" + model + " reason=" + reason);
  }

  @Override
  public void servedFromZero(ModelLoads.ColdStart c) {
    ColdStartLog.ColdStart cs = underWay.remove(c.model());
    if (cs != null) {
      cs.mark("first_inference", c.inferenceAnsweredNanos());
    }
    servedFromZero.record(c.total().toNanos(), TimeUnit.NANOSECONDS);
    servedFromZeroInTriton.record(c.inTriton().toNanos(), TimeUnit.NANOSECONDS);
    servedFromZeroInThaw.record(Math.max(0, c.inThaw().toNanos()), TimeUnit.NANOSECONDS);
    LOG.info(() -> "event=triton_served_from_zero model=" + c.model() + " ms=" + c.total().toMillis()
        + " triton_ms=" + c.inTriton().toMillis() + " thaw_ms=" + c.inThaw().toMillis());
  }

  @Override
  public void unloaded(String model) {
    unloaded.increment();
    underWay.remove(model);
    int chunks = repositories.release(model);
    LOG.info(() -> "event=triton_model_unloaded model=" + model + " chunks_first_to_evict=" + chunks);
  }

  /** Closes Triton's ports, then saves each repository's profile where this run grew it. Idempotent. */
  @PreDestroy
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    closeProxies();
    List<TritonRepositories.Repository> all = repositories.repositories();
    for (int i = 0; i < all.size(); i++) {
      TritonRepositories.Repository r = all.get(i);
      Optional<AccessProfile> grown = TritonRepositories.profileToSave(r);
      if (grown.isEmpty()) {
        continue;
      }
      try {
        String where = mounts.saveProfile(mountIds.get(i), grown.get());
        LOG.info(() -> "event=triton_profile_saved repository=" + r.given() + " chunks=" + grown.get().chunkCount()
            + " at=" + where);
      } catch (IOException | RuntimeException e) {
        LOG.log(Level.WARNING, "event=triton_profile_not_saved repository=" + r.given() + " cause=" + e);
      }
    }
  }

  private void closeProxies() {
    for (AutoCloseable p : proxies.reversed()) { // the proxies before the loads they wait on
      try {
        p.close();
      } catch (Exception e) {
        LOG.log(Level.WARNING, "event=triton_proxy_close_failed cause=" + e);
      }
    }
    proxies.clear();
  }

  private void unmountQuietly(String id) {
    try {
      mounts.unmount(id);
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "event=unmount_failed id=" + id + " cause=" + e);
    }
  }

  private static InetSocketAddress address(String setting, String hostPort) {
    int colon = hostPort.lastIndexOf(':');
    try {
      if (colon > 0) {
        return new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
      }
    } catch (NumberFormatException e) {
      // said below
    }
    throw new IllegalArgumentException(setting + ": expected HOST:PORT, not '" + hostPort + "'");
  }
}
