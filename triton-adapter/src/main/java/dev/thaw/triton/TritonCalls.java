package dev.thaw.triton;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * One blocking call to a method of Triton's gRPC service ({@code GRPCInferenceServiceGrpc.getModelReadyMethod()}
 * and the like) over a real channel, bounded by a deadline: the calls Thaw makes itself (checks, loads, unloads) and
 * those of its benchmarks' clients.
 */
public final class TritonCalls {
  private TritonCalls() {}

  /** Calls {@code method}; fails at once (UNAVAILABLE) when Triton cannot be reached. */
  public static <Q, A> A call(Channel channel, MethodDescriptor<Q, A> method, Q request, Duration deadline) {
    return ClientCalls.blockingUnaryCall(channel, method, options(deadline), request);
  }

  /**
   * Calls {@code method}, waiting within the deadline for a connection first: for calls made while Triton may still
   * be starting (or coming back), which should wait for it rather than fail.
   */
  public static <Q, A> A callWhenConnected(Channel channel, MethodDescriptor<Q, A> method, Q request,
      Duration deadline) {
    return ClientCalls.blockingUnaryCall(channel, method, options(deadline).withWaitForReady(), request);
  }

  private static CallOptions options(Duration deadline) {
    return CallOptions.DEFAULT.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
  }
}
