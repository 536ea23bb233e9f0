package dev.thaw.triton;

import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Detachable;
import io.grpc.HandlerRegistry;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A transparent proxy for Triton's gRPC endpoint: every method a client calls, {@code inference.GRPCInferenceService}'s
 * and any other (the health service, methods of a newer Triton), is forwarded to the upstream as bytes, whatever its
 * kind (unary or streaming). Metadata and the client's deadline go upstream; headers, messages, the status and its
 * trailers come back unchanged. Each direction moves one message at a time and asks for the next only when the other
 * side can take it, so a fast sender is held back by a slow receiver instead of filling the proxy's memory.
 *
 * <p>Nothing is parsed here; a later stage looks inside the requests it needs (the model name) without changing what
 * is forwarded.
 */
public final class TritonGrpcProxy implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TritonGrpcProxy.class);
  /** Triton accepts messages up to 2 GiB; so must the proxy, both ways. */
  private static final int MAX_MESSAGE_BYTES = Integer.MAX_VALUE;
  /** Triton's gRPC HTTP/2 window is large; a small one would halve the bandwidth of a large tensor through a hop. */
  private static final int FLOW_CONTROL_WINDOW = 8 << 20;

  private static final String SERVICE = "inference.GRPCInferenceService/";
  /** Triton's unary methods about one model; each request's field 1 is the model's name. */
  private static final Set<String> MODEL_METHODS = Set.of(SERVICE + "ModelInfer", SERVICE + "ModelReady",
      SERVICE + "ModelMetadata", SERVICE + "ModelConfig", SERVICE + "ModelStatistics");
  /** Triton's stream of inferences: each message is a ModelInferRequest, its field 1 the model, field 3 its id. */
  private static final String STREAM = SERVICE + "ModelStreamInfer";
  private static final String INFER = SERVICE + "ModelInfer";
  /** Triton's model control methods; each request's field 2 is the model's name. */
  private static final String LOAD = SERVICE + "RepositoryModelLoad", UNLOAD = SERVICE + "RepositoryModelUnload";

  private final String upstream;
  private final ManagedChannel channel;
  private final Server server;
  private final ModelLoads loads; // null: a plain proxy

  private TritonGrpcProxy(InetSocketAddress listen, String upstream, ModelLoads loads) throws IOException {
    this.upstream = upstream;
    // Forwarding never blocks, so both sides run it on the transport's threads: no hand-off per message.
    this.channel = NettyChannelBuilder.forTarget(upstream)
        .usePlaintext()
        .directExecutor()
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .flowControlWindow(FLOW_CONTROL_WINDOW)
        .build();
    this.loads = loads;
    this.server = NettyServerBuilder.forAddress(listen)
        .fallbackHandlerRegistry(new AnyMethod())
        .directExecutor()
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .flowControlWindow(FLOW_CONTROL_WINDOW)
        .build();
    try {
      server.start();
    } catch (IOException e) {
      channel.shutdownNow();
      throw new IOException("cannot listen for gRPC on " + listen.getHostString() + ":" + listen.getPort() + ": "
          + e.getMessage(), e);
    }
    log.info("gRPC proxy on {} for Triton at {}", listen.getHostString() + ":" + server.getPort(), upstream);
  }

  /**
   * Listens on {@code listen} (port 0 picks one) and forwards every call to the gRPC server at {@code upstream}
   * ({@code host:port}, or any target gRPC understands).
   *
   * @throws IOException when the address cannot be listened on
   */
  public static TritonGrpcProxy start(InetSocketAddress listen, String upstream) throws IOException {
    return new TritonGrpcProxy(Objects.requireNonNull(listen, "listen"), Objects.requireNonNull(upstream, "upstream"),
        null);
  }

  /**
   * As {@link #start(InetSocketAddress, String)}, and a request about a model of Triton's repositories that is not
   * loaded waits while {@code loads} has Triton load it. The caller closes {@code loads}.
   */
  public static TritonGrpcProxy startLoadingOnFirstRequest(InetSocketAddress listen, String upstream,
      ModelLoads loads) throws IOException {
    return new TritonGrpcProxy(Objects.requireNonNull(listen, "listen"), Objects.requireNonNull(upstream, "upstream"),
        Objects.requireNonNull(loads, "loads"));
  }

  /** The port the proxy listens on. */
  public int port() {
    return server.getPort();
  }

  /** The upstream target every call goes to. */
  public String upstream() {
    return upstream;
  }

  /**
   * Stops taking calls, gives calls in flight up to 5 s to finish, then cancels what is left (streams included) and
   * closes the connection to the upstream.
   */
  @Override
  public void close() {
    server.shutdown();
    try {
      if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    } finally {
      channel.shutdownNow();
    }
  }

  /** Answers every method name with a byte-forwarding handler; descriptors are made once per name. */
  private final class AnyMethod extends HandlerRegistry {
    private final ConcurrentHashMap<String, ServerMethodDefinition<Frame, Frame>> methods = new ConcurrentHashMap<>();

    @Override
    public ServerMethodDefinition<?, ?> lookupMethod(String methodName, String authority) {
      return methods.computeIfAbsent(methodName, name -> ServerMethodDefinition.create(
          MethodDescriptor.newBuilder(Frame.MARSHALLER, Frame.MARSHALLER)
              .setFullMethodName(name)
              .setType(MethodDescriptor.MethodType.UNKNOWN) // streaming or not, the same forwarding serves it
              .build(),
          new Forward()));
    }
  }

  /** Starts the upstream call for each client call, with the client's metadata and deadline. */
  private final class Forward implements ServerCallHandler<Frame, Frame> {
    @Override
    public ServerCall.Listener<Frame> startCall(ServerCall<Frame, Frame> serverCall, Metadata headers) {
      CallOptions options = CallOptions.DEFAULT;
      Deadline deadline = Context.current().getDeadline(); // the client's grpc-timeout, which is not in headers
      if (deadline != null) {
        options = options.withDeadline(deadline);
      }
      if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
        // Triton was away: try it now rather than after a back-off grown while it restarted (up to 2 minutes)
        channel.resetConnectBackoff();
      }
      String method = serverCall.getMethodDescriptor().getFullMethodName();
      if (loads != null) {
        loads.warm();
      }
      CallPair pair = new CallPair(serverCall, options, headers,
          loads == null ? 0 : MODEL_METHODS.contains(method) ? 1 : 0, loads != null && method.equals(STREAM),
          loads == null ? null : method.equals(LOAD) ? Boolean.TRUE : method.equals(UNLOAD) ? Boolean.FALSE : null,
          loads != null && method.equals(INFER));
      if (pair.gated()) {
        serverCall.request(1); // the upstream call starts once the request's model can be served
      } else {
        pair.startUpstream(false);
        serverCall.request(1);
      }
      return pair.fromClient;
    }
  }

  /**
   * One client call and its upstream call. Each direction asks its source for the next message only when its sink is
   * ready; a sink that was not ready asks once it reports ready again.
   */
  private final class CallPair {
    private final ServerCall<Frame, Frame> serverCall;
    private final CallOptions options;
    private ClientCall<Frame, Frame> clientCall; // made as the call goes upstream
    private final Metadata headers;
    private final int modelField; // 0: no gate; else the request's field naming the model to wait for
    private final boolean streamOfModels; // each message of the stream waits for its model, in order
    private boolean holding; // a stream message waits for its model: the client's half-close waits behind it
    // A stream's answers come in request order: an answer made here waits for those of the messages sent before it
    // (one answer per message, as Triton gives for models that are not decoupled).
    private int unanswered;
    private Frame answerAfterThem;
    private boolean headersSent;
    private final Boolean control; // a load (TRUE) or unload (FALSE) whose success Thaw notes; null otherwise
    private String controlledModel;
    private final boolean infer; // a ModelInfer: the first after its model's load ends a cold start
    // the first inference after a load, timed for the cold start: its model, when it was sent, and (in a stream)
    // which answer is its own
    private String firstInference;
    private long firstInferenceSent;
    private long firstInferenceAnswer;
    private long streamSent, streamAnswered;
    final FromClient fromClient = new FromClient();
    final FromUpstream fromUpstream = new FromUpstream();
    // the gate, guarded by this: until the upstream call starts, the client's half-close and cancel are noted here
    private boolean started;
    private boolean halfClosed;
    private boolean cancelled;
    private String heldFor; // the model this request waits for, until it stops waiting
    private String heldModel; // the model a gated call is about

    CallPair(ServerCall<Frame, Frame> serverCall, CallOptions options, Metadata headers,
        int modelField, boolean streamOfModels, Boolean control, boolean infer) {
      this.infer = infer;
      this.streamOfModels = streamOfModels;
      this.serverCall = serverCall;
      this.options = options;
      this.headers = headers;
      this.modelField = modelField;
      this.control = control;
    }

    boolean gated() {
      return modelField > 0;
    }

    /**
     * Starts the upstream call. One that {@code waited} for its model's load waits for a connection too (within the
     * client's deadline): Triton has just answered the load, and a connection that failed while it was starting may
     * still be coming back.
     */
    synchronized void startUpstream(boolean waited) {
      started = true;
      clientCall = channel.newCall(serverCall.getMethodDescriptor(), waited ? options.withWaitForReady() : options);
      clientCall.start(fromUpstream, headers);
      clientCall.request(1);
    }

    /** The gated call's one request: waits until its model can be served, then goes upstream. */
    private void gate(Frame message) {
      String model = message.field(modelField);
      if (model == null || model.isEmpty()) {
        open(message, false); // Triton answers a request that names no model
        return;
      }
      synchronized (this) {
        heldFor = model;
        heldModel = model;
      }
      CompletableFuture<Void> servable = loads.whenServable(model);
      boolean waits = !servable.isDone();
      servable.whenComplete((ok, failure) -> {
        releaseHold();
        if (failure == null) {
          open(message, waits);
          return;
        }
        message.release(); // answered here: it never goes upstream
        synchronized (this) {
          if (!cancelled) {
            Status status = Status.fromThrowable(failure);
            serverCall.close(status, new Metadata());
            cancelled = true;
          }
        }
      });
    }

    /** Sends an answer made here in the stream, then reads the client's next message. Called holding the lock. */
    private void sendOwnAnswer(Frame answer) {
      if (!headersSent) {
        headersSent = true;
        serverCall.sendHeaders(new Metadata());
      }
      serverCall.sendMessage(answer);
      serverCall.request(1);
    }

    /** The request no longer waits for its model (served, failed, or given up): counted once. */
    private synchronized void releaseHold() {
      if (heldFor != null) {
        loads.release(heldFor);
        heldFor = null;
      }
    }

    private synchronized void open(Frame message, boolean waited) {
      if (cancelled) {
        message.release();
        return; // the client gave up while it waited (its deadline passed, or it cancelled)
      }
      startUpstream(waited);
      if (infer) {
        String model = heldModel;
        if (model != null && loads.awaitsFirstInference(model)) {
          firstInference = model;
          firstInferenceSent = System.nanoTime();
        }
      }
      clientCall.sendMessage(message);
      if (halfClosed) {
        clientCall.halfClose();
      }
      serverCall.request(1);
    }

    /** Client to upstream. */
    final class FromClient extends ServerCall.Listener<Frame> {
      private boolean owed; // a message was forwarded while the upstream could take no more: ask when it can

      @Override
      public void onMessage(Frame message) {
        synchronized (CallPair.this) {
          if (!started) {
            gate(message);
            return;
          }
        }
        if (control != null && controlledModel == null) {
          controlledModel = message.field(2);
          if (control && controlledModel != null && !controlledModel.isEmpty()) {
            loads.loadingBy(controlledModel); // its bytes are asked for before Triton reads them
          }
        }
        if (streamOfModels) {
          String model = message.field(1);
          if (model != null && !model.isEmpty()) {
            CompletableFuture<Void> servable = loads.whenServable(model);
            if (!servable.isDone() || servable.isCompletedExceptionally()) {
              synchronized (CallPair.this) {
                holding = true; // no more is read from the client until this message goes on
                heldFor = model;
              }
              servable.whenComplete((ok, failure) -> {
                releaseHold();
                if (failure == null) {
                  forward(message);
                } else {
                  answerInBand(message, model, failure);
                }
                boolean endNow;
                synchronized (CallPair.this) {
                  holding = false;
                  endNow = halfClosed;
                }
                if (endNow) {
                  synchronized (CallPair.this) {
                    clientCall.halfClose();
                  }
                }
              });
              return;
            }
            loads.release(model);
          }
        }
        forward(message);
      }

      private void forward(Frame message) {
        synchronized (CallPair.this) {
          if (streamOfModels) {
            unanswered++;
            if (firstInference == null) {
              String model = message.field(1);
              if (model != null && loads.awaitsFirstInference(model)) {
                firstInference = model;
                firstInferenceSent = System.nanoTime();
                firstInferenceAnswer = streamSent;
              }
            }
            streamSent++;
          }
          clientCall.sendMessage(message);
          if (clientCall.isReady()) {
            serverCall.request(1);
          } else {
            owed = true;
          }
        }
      }

      @Override
      public void onHalfClose() {
        synchronized (CallPair.this) {
          if (!started || holding) {
            halfClosed = true;
            return;
          }
        }
        clientCall.halfClose();
      }

      /** A stream message whose model failed to load: answered in the stream, as Triton answers its errors. */
      private void answerInBand(Frame message, String model, Throwable failure) {
        ModelInferResponse.Builder failed = ModelInferResponse.newBuilder().setModelName(model);
        String id = message.field(3);
        message.release(); // answered here: it never goes upstream
        if (id != null) {
          failed.setId(id);
        }
        Frame answer = Frame.of(ModelStreamInferResponse.newBuilder()
            .setErrorMessage(String.valueOf(Status.fromThrowable(failure).getDescription()))
            .setInferResponse(failed).build().toByteArray());
        synchronized (CallPair.this) {
          if (unanswered > 0) {
            answerAfterThem = answer; // sent, and the client read on, once the earlier answers are out
            return;
          }
          sendOwnAnswer(answer);
        }
      }

      @Override
      public void onCancel() {
        synchronized (CallPair.this) {
          if (!started) {
            cancelled = true;
            releaseHold(); // a request that gave up makes room for another
            return;
          }
        }
        clientCall.cancel("the client cancelled the call or its deadline passed", null);
      }

      @Override
      public void onReady() {
        fromUpstream.sinkReady();
      }

      void sinkReady() {
        synchronized (CallPair.this) {
          if (owed) {
            owed = false;
            serverCall.request(1);
          }
        }
      }
    }

    /** Upstream to client. */
    final class FromUpstream extends ClientCall.Listener<Frame> {
      private boolean owed;

      @Override
      public void onHeaders(Metadata headers) {
        synchronized (CallPair.this) {
          if (!headersSent) { // unless an answer made here went first
            headersSent = true;
            serverCall.sendHeaders(headers);
          }
        }
      }

      @Override
      public void onMessage(Frame message) {
        synchronized (CallPair.this) {
          serverCall.sendMessage(message);
          if (firstInference != null && streamOfModels && streamAnswered++ == firstInferenceAnswer) {
            loads.inferenceAnswered(firstInference, firstInferenceSent);
            firstInference = null;
          }
          if (streamOfModels && --unanswered <= 0 && answerAfterThem != null) {
            unanswered = 0;
            sendOwnAnswer(answerAfterThem);
            answerAfterThem = null;
          }
          if (serverCall.isReady()) {
            clientCall.request(1);
          } else {
            owed = true;
          }
        }
      }

      @Override
      public void onClose(Status status, Metadata trailers) {
        if (controlledModel != null && !controlledModel.isEmpty()) {
          if (!status.isOk()) {
            if (control) {
              loads.loadFailedBy(controlledModel, String.valueOf(status.getDescription()));
            }
          } else if (control) {
            loads.loadedBy(controlledModel);
          } else {
            loads.unloadedBy(controlledModel);
          }
        }
        synchronized (CallPair.this) {
          if (infer && status.isOk() && firstInference != null) {
            loads.inferenceAnswered(firstInference, firstInferenceSent);
          }
          if (infer && status.isOk() && heldModel != null && loads.wantsAnInference()) {
            loads.inferenceSucceeded(new ModelLoads.Inference(heldModel, null, null)); // its tensors are not kept
          }
          serverCall.close(upstreamStatus(status), trailers);
        }
      }

      @Override
      public void onReady() {
        fromClient.sinkReady();
      }

      void sinkReady() {
        synchronized (CallPair.this) {
          if (owed) {
            owed = false;
            clientCall.request(1);
          }
        }
      }
    }
  }

  /**
   * A status the upstream sent passes unchanged. One made on the proxy's side of the connection (the upstream
   * unreachable or gone mid-call: it carries the transport's exception) also says which upstream, so the client's
   * error names what failed.
   */
  private Status upstreamStatus(Status status) {
    if (status.getCause() == null || status.isOk()) {
      return status;
    }
    String what = status.getDescription() != null ? status.getDescription() : String.valueOf(status.getCause());
    return status.withDescription("Triton at " + upstream + ": " + what);
  }

  /**
   * One message as the transport handed it over: its buffers, detached from the call rather than copied into an array
   * (gRPC's {@link Detachable}), written on as they are. A message the proxy answers itself instead is released.
   */
  static final class Frame {
    /** Messages as they are on the wire: nothing parsed, nothing copied beyond what the transports do. */
    static final MethodDescriptor.Marshaller<Frame> MARSHALLER = new MethodDescriptor.Marshaller<>() {
      @Override
      public InputStream stream(Frame value) {
        return value.in;
      }

      @Override
      public Frame parse(InputStream stream) {
        try {
          return new Frame(stream instanceof Detachable d ? d.detach()
              : new ByteArrayInputStream(stream.readAllBytes()));
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
    };

    private InputStream in;

    private Frame(InputStream in) {
      this.in = in;
    }

    static Frame of(byte[] message) {
      return new Frame(new ByteArrayInputStream(message));
    }

    /** The string in field {@code number} of the message, read without consuming it; null when absent. */
    String field(int number) {
      try {
        if (!in.markSupported()) {
          in = new ByteArrayInputStream(in.readAllBytes());
        }
        in.mark(Integer.MAX_VALUE);
        try {
          return ModelNames.field(in, number);
        } finally {
          in.reset();
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    /** Lets the transport's buffers go: for a message that is not forwarded. */
    void release() {
      try {
        in.close();
      } catch (IOException e) {
        // nothing held any more either way
      }
    }
  }
}
