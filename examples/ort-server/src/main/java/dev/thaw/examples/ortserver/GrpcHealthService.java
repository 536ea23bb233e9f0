package dev.thaw.examples.ortserver;

import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.HealthCheckRequest;
import dev.thaw.triton.protocol.HealthCheckResponse;
import dev.thaw.triton.protocol.HealthCheckResponse.ServingStatus;
import dev.thaw.triton.protocol.HealthGrpc;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;

/**
 * The standard gRPC health service ({@code grpc.health.v1.Health}), which Triton serves beside its inference service
 * and which Kubernetes' gRPC probes call: SERVING while the server is ready (what {@code ServerReady} answers),
 * NOT_SERVING otherwise. The server as a whole ({@code ""}) and {@code inference.GRPCInferenceService} are known;
 * another service name is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch, as the health protocol asks.
 *
 * <p>Watch sends the status at once and then every change; the server calls {@link #readinessChanged} whenever its
 * readiness may have changed, and {@link #shutdown} before it stops, which ends every watch with NOT_SERVING.
 */
final class GrpcHealthService extends HealthGrpc.HealthImplBase {
  private static final Set<String> KNOWN = Set.of("", GRPCInferenceServiceGrpc.SERVICE_NAME);

  private final BooleanSupplier ready;
  private final Set<Watcher> watchers = ConcurrentHashMap.newKeySet();
  private volatile boolean shutdown;

  /** @param ready the server's readiness */
  GrpcHealthService(BooleanSupplier ready) {
    this.ready = ready;
  }

  @Override
  public void check(HealthCheckRequest request, StreamObserver<HealthCheckResponse> response) {
    if (!KNOWN.contains(request.getService())) {
      response.onError(Status.NOT_FOUND.withDescription("unknown service '" + request.getService() + "'; known: ''"
          + " (the server) and '" + GRPCInferenceServiceGrpc.SERVICE_NAME + "'").asRuntimeException());
      return;
    }
    response.onNext(HealthCheckResponse.newBuilder().setStatus(status()).build());
    response.onCompleted();
  }

  @Override
  public void watch(HealthCheckRequest request, StreamObserver<HealthCheckResponse> response) {
    ServerCallStreamObserver<HealthCheckResponse> call = (ServerCallStreamObserver<HealthCheckResponse>) response;
    if (!KNOWN.contains(request.getService())) {
      // No service appears later, so this stays the only message until the client cancels.
      call.onNext(HealthCheckResponse.newBuilder().setStatus(ServingStatus.SERVICE_UNKNOWN).build());
      return;
    }
    Watcher watcher = new Watcher(call);
    call.setOnCancelHandler(() -> watchers.remove(watcher));
    watchers.add(watcher);
    watcher.send(status());
    if (shutdown) {
      watcher.end(); // shutdown ran between the check above and the add: it may have missed this watcher
    }
  }

  /** Sends the current status to every watcher whose last status differs. */
  void readinessChanged() {
    ServingStatus now = status();
    for (Watcher watcher : watchers) {
      watcher.send(now);
    }
  }

  /** Ends every watch with NOT_SERVING, so that the gRPC server's shutdown does not wait for them. */
  void shutdown() {
    shutdown = true;
    for (Watcher watcher : watchers) {
      watcher.end();
    }
    watchers.clear();
  }

  private ServingStatus status() {
    return !shutdown && ready.getAsBoolean() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /** One Watch call; sends are serialized (readiness changes come from the model-loading threads). */
  private static final class Watcher {
    private final ServerCallStreamObserver<HealthCheckResponse> call;
    private ServingStatus last;
    private boolean ended;

    Watcher(ServerCallStreamObserver<HealthCheckResponse> call) {
      this.call = call;
    }

    synchronized void send(ServingStatus status) {
      if (ended || status == last || call.isCancelled()) {
        return;
      }
      last = status;
      call.onNext(HealthCheckResponse.newBuilder().setStatus(status).build());
    }

    synchronized void end() {
      if (ended) {
        return;
      }
      send(ServingStatus.NOT_SERVING);
      ended = true;
      if (!call.isCancelled()) {
        call.onCompleted();
      }
    }
  }
}
