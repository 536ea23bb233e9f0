package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.HandlerRegistry;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What the proxy passes on for any call, seen from an upstream that reports what reached it: metadata and deadlines
 * up; headers, statuses and trailers down; cancellation; back-pressure with nothing lost.
 */
class TritonGrpcProxyCallsTest {
  static final Metadata.Key<String> ASCII = Metadata.Key.of("x-request-note", Metadata.ASCII_STRING_MARSHALLER);
  static final Metadata.Key<byte[]> BINARY = Metadata.Key.of("x-request-data-bin", Metadata.BINARY_BYTE_MARSHALLER);
  static final Metadata.Key<String> REASON = Metadata.Key.of("x-reason", Metadata.ASCII_STRING_MARSHALLER);

  static ReportingUpstream upstream;
  static TritonGrpcProxy proxy;
  static ManagedChannel channel;

  @BeforeAll
  static void start() throws Exception {
    upstream = new ReportingUpstream();
    proxy = TritonGrpcProxy.start(new InetSocketAddress("127.0.0.1", 0), "127.0.0.1:" + upstream.server.getPort());
    channel = ProxyTesting.channel(proxy.port());
  }

  @AfterAll
  static void stop() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    proxy.close();
    upstream.server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void metadataGoesUpAndHeadersMessagesAndTrailersComeBackUnchanged() {
    Metadata headers = new Metadata();
    headers.put(ASCII, "note 1");
    byte[] binary = {0, 1, 2, (byte) 0xff};
    headers.put(BINARY, binary);
    AtomicReference<Metadata> responseHeaders = new AtomicReference<>();
    AtomicReference<Metadata> trailers = new AtomicReference<>();

    byte[] answer = ClientCalls.blockingUnaryCall(
        io.grpc.ClientInterceptors.intercept(channel, io.grpc.stub.MetadataUtils.newAttachHeadersInterceptor(headers),
            io.grpc.stub.MetadataUtils.newCaptureMetadataInterceptor(responseHeaders, trailers)),
        method("test.Echo/Unary"), CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS),
        "hello".getBytes(StandardCharsets.UTF_8));

    assertThat(new String(answer, StandardCharsets.UTF_8)).isEqualTo("hello");
    assertThat(responseHeaders.get().get(ASCII)).isEqualTo("note 1");
    assertThat(responseHeaders.get().get(BINARY)).isEqualTo(binary);
    assertThat(trailers.get().get(REASON)).isEqualTo("echoed");
    assertThat(trailers.get().get(BINARY)).isEqualTo(binary);
  }

  @Test
  void anUpstreamFailureKeepsItsCodeDescriptionAndTrailers() {
    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(
        channel, method("test.Echo/Fail"), CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), new byte[1]));

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(e.getStatus().getDescription()).isEqualTo("the model is not there");
    assertThat(e.getTrailers().get(REASON)).isEqualTo("because");
  }

  @Test
  void theClientsDeadlineReachesTheUpstreamAndEndsItsCall() throws Exception {
    ReportingUpstream.Waiting waiting = upstream.expectWait();
    long before = System.nanoTime();

    StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(
        channel, method("test.Echo/Wait"), CallOptions.DEFAULT.withDeadlineAfter(500, TimeUnit.MILLISECONDS),
        new byte[1]));

    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
    Deadline seen = waiting.deadline.get(10, TimeUnit.SECONDS);
    assertThat(seen).as("the upstream call has a deadline").isNotNull();
    long upstreamBudgetMs = seen.timeRemaining(TimeUnit.MILLISECONDS) + (System.nanoTime() - before) / 1_000_000;
    assertThat(upstreamBudgetMs).as("the client's 500 ms, less the hop").isBetween(0L, 600L);
    assertThat(waiting.cancelled.await(10, TimeUnit.SECONDS)).as("the upstream call ends").isTrue();
  }

  @Test
  void aClientCancellingEndsTheUpstreamCall() throws Exception {
    ReportingUpstream.Waiting waiting = upstream.expectWait();
    ClientCall<byte[], byte[]> call = channel.newCall(method("test.Echo/Wait"), CallOptions.DEFAULT);
    CompletableFuture<Status> closed = new CompletableFuture<>();
    call.start(new ClientCall.Listener<>() {
      @Override
      public void onClose(Status status, Metadata trailers) {
        closed.complete(status);
      }
    }, new Metadata());
    call.sendMessage(new byte[1]);
    call.halfClose();
    waiting.deadline.get(10, TimeUnit.SECONDS); // the call has reached the upstream

    call.cancel("the user gave up", null);

    assertThat(waiting.cancelled.await(10, TimeUnit.SECONDS)).isTrue();
    assertThat(closed.get(10, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.CANCELLED);
  }

  @Test
  void aSlowUpstreamHoldsBackAFastClientAndNothingIsLost() throws Exception {
    CountDownLatch release = upstream.expectHold();
    ClientCall<byte[], byte[]> call = channel.newCall(
        method("test.Echo/Hold", MethodDescriptor.MethodType.CLIENT_STREAMING),
        CallOptions.DEFAULT.withDeadlineAfter(60, TimeUnit.SECONDS));
    CompletableFuture<byte[]> answer = new CompletableFuture<>();
    call.start(new ClientCall.Listener<>() {
      @Override
      public void onMessage(byte[] message) {
        answer.complete(message);
      }

      @Override
      public void onClose(Status status, Metadata trailers) {
        if (!status.isOk()) {
          answer.completeExceptionally(status.asException(trailers));
        }
      }
    }, new Metadata());
    call.request(1);
    byte[] message = new byte[256 << 10];
    long sent = 0;
    long limit = 256L << 20; // what the client would send if nothing held it back
    long idleSince = System.nanoTime();
    while (sent < limit && System.nanoTime() - idleSince < TimeUnit.MILLISECONDS.toNanos(500)) {
      if (call.isReady()) {
        call.sendMessage(message);
        sent += message.length;
        idleSince = System.nanoTime();
      } else {
        Thread.sleep(1);
      }
    }

    assertThat(sent).as("bytes the client could send while the upstream read nothing").isLessThan(64L << 20);

    release.countDown(); // the upstream reads on; the client sends a few more, then ends the stream
    for (int i = 0; i < 8; i++) {
      while (!call.isReady()) {
        Thread.sleep(1);
      }
      call.sendMessage(message);
      sent += message.length;
    }
    call.halfClose();
    assertThat(Long.parseLong(new String(answer.get(60, TimeUnit.SECONDS), StandardCharsets.UTF_8)))
        .as("bytes the upstream received").isEqualTo(sent);
  }

  static MethodDescriptor<byte[], byte[]> method(String name) {
    return method(name, MethodDescriptor.MethodType.UNARY);
  }

  static MethodDescriptor<byte[], byte[]> method(String name, MethodDescriptor.MethodType type) {
    return ProxyTesting.method(name, type);
  }

  /**
   * A gRPC server for any method name that says what reached it: {@code Unary} echoes the message and the request's
   * metadata (as headers and in its trailers), {@code Fail} fails with trailers, {@code Wait} never answers and
   * reports its deadline and its end, {@code Hold} reads its first message, then nothing until released, and
   * answers with the bytes it read.
   */
  static final class ReportingUpstream {
    final Server server;
    private volatile Waiting waiting;
    private volatile CountDownLatch holdRelease;

    static final class Waiting {
      final CompletableFuture<Deadline> deadline = new CompletableFuture<>();
      final CountDownLatch cancelled = new CountDownLatch(1);
    }

    ReportingUpstream() throws Exception {
      server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
          .fallbackHandlerRegistry(new HandlerRegistry() {
            @Override
            public ServerMethodDefinition<?, ?> lookupMethod(String methodName, String authority) {
              return ServerMethodDefinition.create(method(methodName, MethodDescriptor.MethodType.UNKNOWN),
                  handler(methodName.substring(methodName.indexOf('/') + 1)));
            }
          })
          .build().start();
    }

    Waiting expectWait() {
      waiting = new Waiting();
      return waiting;
    }

    CountDownLatch expectHold() {
      holdRelease = new CountDownLatch(1);
      return holdRelease;
    }

    private ServerCallHandler<byte[], byte[]> handler(String name) {
      return (call, headers) -> switch (name) {
        case "Unary" -> {
          call.request(1);
          yield new ServerCall.Listener<>() {
            @Override
            public void onMessage(byte[] message) {
              Metadata echoed = new Metadata();
              echoed.put(ASCII, headers.get(ASCII));
              echoed.put(BINARY, headers.get(BINARY));
              call.sendHeaders(echoed);
              call.sendMessage(message);
              Metadata trailers = new Metadata();
              trailers.put(REASON, "echoed");
              trailers.put(BINARY, headers.get(BINARY));
              call.close(Status.OK, trailers);
            }
          };
        }
        case "Fail" -> {
          call.request(1);
          yield new ServerCall.Listener<>() {
            @Override
            public void onHalfClose() {
              Metadata trailers = new Metadata();
              trailers.put(REASON, "because");
              call.close(Status.FAILED_PRECONDITION.withDescription("the model is not there"), trailers);
            }
          };
        }
        case "Wait" -> {
          Waiting w = waiting;
          w.deadline.complete(Context.current().getDeadline());
          call.request(1);
          yield new ServerCall.Listener<>() {
            @Override
            public void onCancel() {
              w.cancelled.countDown();
            }
          };
        }
        case "Hold" -> {
          CountDownLatch release = holdRelease;
          AtomicLong received = new AtomicLong();
          call.request(1);
          yield new ServerCall.Listener<>() {
            @Override
            public void onMessage(byte[] message) {
              received.addAndGet(message.length);
              if (release.getCount() > 0) {
                Thread.ofVirtual().start(() -> { // wait off the transport's thread, then read on
                  try {
                    release.await();
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                  call.request(Integer.MAX_VALUE);
                });
              }
            }

            @Override
            public void onHalfClose() {
              call.sendHeaders(new Metadata());
              call.sendMessage(Long.toString(received.get()).getBytes(StandardCharsets.UTF_8));
              call.close(Status.OK, new Metadata());
            }
          };
        }
        default -> {
          call.close(Status.UNIMPLEMENTED.withDescription("no " + name), new Metadata());
          yield new ServerCall.Listener<>() {};
        }
      };
    }
  }
}
