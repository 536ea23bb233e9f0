package dev.thaw.triton;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.Status;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.net.InetSocketAddress;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A transparent proxy for Triton's HTTP/REST endpoint (KServe v2 and Triton's extensions) or its metrics endpoint:
 * each client connection gets its own connection to the upstream, and requests and responses pass through as parsed
 * HTTP/1.1 messages, head then body pieces as they arrive, so chunked bodies, the binary tensor extension
 * ({@code Inference-Header-Content-Length}), server-sent events and bodies of any size stream through without being
 * held whole. A side that cannot take more stops the other side's reading (back-pressure). Requests are answered in
 * order because the upstream connection is the client's alone.
 *
 * <p>When the upstream cannot be reached, each request on the connection is answered {@code 502 Bad Gateway} with
 * Triton's error body ({@code {"error": "..."}}) naming the upstream and the cause; a connection the upstream drops
 * mid-answer is closed.
 */
public final class TritonHttpProxy implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TritonHttpProxy.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Longer request lines and header blocks than Netty's defaults: model names and trace settings can be long. */
  private static final int MAX_INITIAL_LINE = 16 << 10, MAX_HEADERS = 64 << 10, MAX_CHUNK = 64 << 10;

  private final InetSocketAddress upstream;
  private final String upstreamName;
  private final EventLoopGroup group;
  private final Channel server;
  private final ModelLoads loads; // null: a plain proxy

  private TritonHttpProxy(InetSocketAddress listen, InetSocketAddress upstream, int threads, ModelLoads loads)
      throws IOException {
    this.upstream = upstream;
    this.loads = loads;
    this.upstreamName = upstream.getHostString() + ":" + upstream.getPort();
    this.group = new MultiThreadIoEventLoopGroup(threads, NioIoHandler.newFactory());
    ChannelFuture bound = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
        .childOption(ChannelOption.TCP_NODELAY, true)
        .childOption(ChannelOption.AUTO_READ, false) // reading starts once the upstream connection is there
        .childHandler(new ChannelInitializer<SocketChannel>() {
          @Override
          protected void initChannel(SocketChannel ch) {
            ch.pipeline().addLast(new HttpServerCodec(MAX_INITIAL_LINE, MAX_HEADERS, MAX_CHUNK), new FromClient());
          }
        })
        .bind(listen).awaitUninterruptibly();
    if (!bound.isSuccess()) {
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
      throw new IOException("cannot listen for HTTP on " + listen.getHostString() + ":" + listen.getPort() + ": "
          + bound.cause().getMessage(), bound.cause());
    }
    this.server = bound.channel();
    log.info("HTTP proxy on {} for Triton at {}", listen.getHostString() + ":" + port(), upstreamName);
  }

  /**
   * Listens on {@code listen} (port 0 picks one) and forwards every request to the HTTP server at {@code upstream}.
   *
   * @throws IOException when the address cannot be listened on
   */
  public static TritonHttpProxy start(InetSocketAddress listen, InetSocketAddress upstream) throws IOException {
    return new TritonHttpProxy(Objects.requireNonNull(listen, "listen"), Objects.requireNonNull(upstream, "upstream"),
        Math.max(2, Runtime.getRuntime().availableProcessors()), null);
  }

  /**
   * As {@link #start}, and a request about a model of Triton's repositories that is not loaded
   * ({@code /v2/models/NAME[/versions/V][/infer|/ready|/config|/stats|/generate|/generate_stream]}) waits while
   * {@code loads} has Triton load it; a failed load is answered 503, one past the load timeout 504, too many waiting
   * 429, each with Triton's error body. The caller closes {@code loads}.
   */
  public static TritonHttpProxy startLoadingOnFirstRequest(InetSocketAddress listen, InetSocketAddress upstream,
      ModelLoads loads) throws IOException {
    return new TritonHttpProxy(Objects.requireNonNull(listen, "listen"), Objects.requireNonNull(upstream, "upstream"),
        Math.max(2, Runtime.getRuntime().availableProcessors()), Objects.requireNonNull(loads, "loads"));
  }

  /** The model a request is about, from its path; null for any other request. */
  static String modelOf(String uri) {
    int query = uri.indexOf('?');
    String path = query < 0 ? uri : uri.substring(0, query);
    if (path.equals("/v2/models/stats") || path.equals("/v2/models/stats/")) {
      return null; // every model's statistics, not a model named "stats"
    }
    Matcher m = MODEL_PATH.matcher(path);
    return m.matches() ? URLDecoder.decode(m.group(1), StandardCharsets.UTF_8) : null;
  }

  /**
   * What Thaw notes about a forwarded request when its answer ends: a load, an unload, or an inference, timed for a
   * cold start ({@code sentNanos} not 0) or wanted as the first answered ({@code wanted}; its JSON request in
   * {@code recording} when kept).
   */
  private record Answer(Kind kind, String model, long sentNanos, boolean wanted, Recording recording) {
    enum Kind { OTHER, LOAD, UNLOAD, INFERENCE }

    static final Answer OTHER = new Answer(Kind.OTHER, null, 0, false, null);

    Answer(Kind kind, String model, long sentNanos) {
      this(kind, model, sentNanos, false, null);
    }
  }

  /** A copy of an inference request's JSON body as it passes, up to {@link ModelLoads#RECORDED_BODY_LIMIT}. */
  private static final class Recording {
    final String path;
    final java.io.ByteArrayOutputStream body = new java.io.ByteArrayOutputStream();
    boolean tooLarge;

    Recording(String path) {
      this.path = path;
    }

    void add(io.netty.buffer.ByteBuf content) {
      int n = content.readableBytes();
      if (tooLarge || body.size() + n > ModelLoads.RECORDED_BODY_LIMIT) {
        tooLarge = true;
        return;
      }
      try {
        content.getBytes(content.readerIndex(), body, n);
      } catch (java.io.IOException cannot) {
        throw new java.io.UncheckedIOException(cannot); // a ByteArrayOutputStream does not fail
      }
    }

    /** An inference request that can be asked again as it was: a JSON body, whole. */
    static Recording of(HttpRequest request) {
      String uri = request.uri();
      int query = uri.indexOf('?');
      String path = query < 0 ? uri : uri.substring(0, query);
      if (!request.method().name().equals("POST") || !(path.endsWith("/infer") || path.endsWith("/infer/"))
          || request.headers().contains("Inference-Header-Content-Length")
          || request.headers().contains(HttpHeaderNames.CONTENT_ENCODING)
          || request.headers().getInt(HttpHeaderNames.CONTENT_LENGTH, 0) > ModelLoads.RECORDED_BODY_LIMIT) {
        return null;
      }
      return new Recording(uri);
    }
  }

  /** A client's load or unload ({@code POST /v2/repository/models/NAME/load|unload}) as an answer to note; else null. */
  static Answer control(HttpRequest request) {
    if (!request.method().name().equals("POST")) {
      return null;
    }
    String uri = request.uri();
    int query = uri.indexOf('?');
    Matcher m = CONTROL_PATH.matcher(query < 0 ? uri : uri.substring(0, query));
    if (!m.matches()) {
      return null;
    }
    return new Answer(m.group(2).equals("load") ? Answer.Kind.LOAD : Answer.Kind.UNLOAD,
        URLDecoder.decode(m.group(1), StandardCharsets.UTF_8), 0);
  }

  private static final Pattern CONTROL_PATH = Pattern.compile("/v2/repository/models/([^/]+)/(load|unload)/?");
  private static final Pattern INFER_PATH = Pattern.compile(".*/(?:infer|generate|generate_stream)/?(?:\\?.*)?");

  private static final Pattern MODEL_PATH =
      Pattern.compile("/v2/models/([^/]+)(?:/versions/[^/]+)?(?:/(?:infer|ready|config|stats|generate|generate_stream))?/?");

  /** The port the proxy listens on. */
  public int port() {
    return ((InetSocketAddress) server.localAddress()).getPort();
  }

  /** Stops listening and closes every connection, answered or not. */
  @Override
  public void close() {
    server.close().syncUninterruptibly();
    group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** The client's side of one connection: opens the upstream connection and writes the client's messages to it. */
  private final class FromClient extends ChannelInboundHandlerAdapter {
    private Channel client;
    private Channel toUpstream;
    private Throwable unreachable; // why the upstream connection failed; the request is then answered 502
    // Load on first request, all on this connection's event loop:
    private ArrayDeque<Object> waiting; // a request waiting for its model, then what came after it; null: none
    private boolean discarding; // the rest of a request answered here is dropped
    private int outstanding; // requests forwarded whose answers have not ended
    private boolean upstreamWritable = true;
    // with loads: what each outstanding request's answer means to Thaw, in order (this connection's answers are)
    private final ArrayDeque<Answer> answers = new ArrayDeque<>();
    private Recording recording; // the forwarded request whose body is being copied; null: none

    /** The waiting request's model can be served, or not: it goes on, or is answered here; then what follows. */
    private void resume(ChannelHandlerContext ctx, String model, Throwable failure) {
      ArrayDeque<Object> queue = waiting;
      waiting = null;
      if (queue == null) {
        return; // the connection ended meanwhile
      }
      if (failure != null) {
        Status status = Status.fromThrowable(failure);
        if (outstanding == 0) {
          ReferenceCountUtil.release(queue.poll());
          discarding = true;
          reply(ctx.channel(), switch (status.getCode()) {
            case RESOURCE_EXHAUSTED -> HttpResponseStatus.TOO_MANY_REQUESTS;
            case DEADLINE_EXCEEDED -> HttpResponseStatus.GATEWAY_TIMEOUT;
            default -> HttpResponseStatus.SERVICE_UNAVAILABLE;
          }, String.valueOf(status.getDescription()));
          queue.forEach(ReferenceCountUtil::release);
          return;
        }
        // an earlier answer is still coming: an answer from here would overtake it, so Triton answers this one
      }
      while (!queue.isEmpty()) {
        channelRead(ctx, queue.poll());
        if (waiting != null) { // a later request waits for its own model: the rest stays behind it
          waiting.addAll(queue);
          break;
        }
      }
      channelReadComplete(ctx);
      updateAutoRead();
    }

    void answerEnded(int status) {
      outstanding--;
      Answer a = answers.poll();
      if (a == null || a.kind() == Answer.Kind.OTHER) {
        return;
      }
      boolean ok = status / 100 == 2;
      switch (a.kind()) {
        case LOAD -> {
          if (ok) {
            loads.loadedBy(a.model());
          } else {
            loads.loadFailedBy(a.model(), "HTTP " + status);
          }
        }
        case UNLOAD -> {
          if (ok) {
            loads.unloadedBy(a.model());
          }
        }
        case OTHER -> {
          // nothing Thaw notes
        }
        case INFERENCE -> {
          if (ok && a.sentNanos() != 0) {
            loads.inferenceAnswered(a.model(), a.sentNanos());
          }
          if (ok && a.wanted()) {
            Recording r = a.recording();
            boolean kept = r != null && !r.tooLarge;
            loads.inferenceSucceeded(new ModelLoads.Inference(a.model(), kept ? r.path : null,
                kept ? r.body.toByteArray() : null));
          }
        }
      }
    }

    /** What the answer to this forwarded request will mean to Thaw; a client's load asks for the bytes first. */
    private Answer noted(HttpRequest request) {
      Answer control = control(request);
      if (control != null) {
        if (control.kind() == Answer.Kind.LOAD) {
          loads.loadingBy(control.model());
        }
        return control;
      }
      String model = modelOf(request.uri());
      if (model == null || !INFER_PATH.matcher(request.uri()).matches()) {
        return Answer.OTHER;
      }
      boolean timed = loads.awaitsFirstInference(model);
      boolean wanted = loads.wantsAnInference();
      if (!timed && !wanted) {
        return Answer.OTHER;
      }
      recording = wanted ? Recording.of(request) : null;
      return new Answer(Answer.Kind.INFERENCE, model, timed ? System.nanoTime() : 0, wanted, recording);
    }

    void upstreamWritable(boolean writable) {
      upstreamWritable = writable;
      updateAutoRead();
    }

    private void updateAutoRead() {
      client.config().setAutoRead(upstreamWritable && waiting == null);
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      client = ctx.channel();
      new Bootstrap().group(client.eventLoop()).channel(NioSocketChannel.class) // one thread for both sides
          .option(ChannelOption.TCP_NODELAY, true)
          .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
          .handler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              ch.pipeline().addLast(new HttpClientCodec(MAX_INITIAL_LINE, MAX_HEADERS, MAX_CHUNK),
                  new FromUpstream(client, FromClient.this));
            }
          })
          .connect(upstream).addListener((ChannelFutureListener) f -> {
            if (f.isSuccess() && !client.isActive()) {
              f.channel().close(); // the client left while the connection was made
              return;
            }
            if (f.isSuccess()) {
              toUpstream = f.channel();
            } else {
              unreachable = f.cause();
            }
            client.config().setAutoRead(true);
            client.read();
          });
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (msg instanceof HttpObject o && o.decoderResult().isFailure()) {
        // not HTTP Triton could read: answered here, as Triton would, rather than forwarded half-parsed
        String why = String.valueOf(o.decoderResult().cause().getMessage());
        ReferenceCountUtil.release(msg);
        reply(ctx.channel(), HttpResponseStatus.BAD_REQUEST, "malformed HTTP request: " + why);
        return;
      }
      if (waiting != null) {
        waiting.add(msg); // behind a request that waits for its model: kept in order
        return;
      }
      if (discarding) {
        discarding = !(msg instanceof LastHttpContent);
        ReferenceCountUtil.release(msg);
        return;
      }
      if (toUpstream != null && loads != null && msg instanceof HttpRequest request) {
        loads.warm();
        String model = modelOf(request.uri());
        if (model != null) {
          CompletableFuture<Void> servable = loads.whenServable(model);
          if (!servable.isDone() || servable.isCompletedExceptionally()) {
            waiting = new ArrayDeque<>(List.of(msg));
            updateAutoRead();
            servable.whenComplete((ok, failure) -> ctx.channel().eventLoop().execute(() -> {
              loads.release(model);
              resume(ctx, model, failure);
            }));
            return;
          }
          loads.release(model);
        }
      }
      if (toUpstream != null) {
        if (msg instanceof HttpRequest request) {
          outstanding++;
          recording = null;
          if (loads != null) {
            answers.add(noted(request));
          }
        }
        if (recording != null && msg instanceof io.netty.handler.codec.http.HttpContent c) {
          recording.add(c.content());
          if (msg instanceof LastHttpContent) {
            recording = null;
          }
        }
        toUpstream.write(msg, toUpstream.voidPromise());
        return;
      }
      ReferenceCountUtil.release(msg);
      if (msg instanceof HttpRequest) {
        String cause = unreachable == null ? "no connection" : String.valueOf(unreachable.getMessage());
        reply(ctx.channel(), HttpResponseStatus.BAD_GATEWAY, "Triton at " + upstreamName + " is unreachable: "
            + cause);
      }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
      if (toUpstream != null) {
        toUpstream.flush();
      }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      if (toUpstream != null) {
        toUpstream.config().setAutoRead(ctx.channel().isWritable()); // the client reads slowly: so does the proxy
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      if (waiting != null) {
        waiting.forEach(ReferenceCountUtil::release);
        waiting = null;
      }
      if (toUpstream != null) {
        toUpstream.close();
      }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      log.debug("HTTP client connection {} failed", ctx.channel().remoteAddress(), cause);
      ctx.close();
    }
  }

  /** The upstream's side of one connection: writes the upstream's answers to the client. */
  private final class FromUpstream extends ChannelInboundHandlerAdapter {
    private final Channel client;
    private final FromClient fromClient;
    private boolean informational; // a 100 Continue is passing: the answer is still to come
    private int status;

    FromUpstream(Channel client, FromClient fromClient) {
      this.client = client;
      this.fromClient = fromClient;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (msg instanceof HttpResponse r) {
        informational = r.status().codeClass() == HttpStatusClass.INFORMATIONAL;
        status = r.status().code();
      }
      if (msg instanceof LastHttpContent) {
        if (!informational) {
          fromClient.answerEnded(status);
        }
        informational = false;
      }
      client.write(msg, client.voidPromise());
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
      client.flush();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      fromClient.upstreamWritable(ctx.channel().isWritable()); // the upstream takes the body slowly
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      // The upstream closed: what it sent is on its way; a client waiting for more learns it from the close.
      client.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      log.debug("HTTP connection to Triton at {} failed", upstreamName, cause);
      ctx.close();
    }
  }

  /** Answers with Triton's error body and closes the connection. */
  private static void reply(Channel client, HttpResponseStatus status, String message) {
    byte[] body;
    try {
      body = JSON.writeValueAsBytes(Map.of("error", message));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
        Unpooled.wrappedBuffer(body));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
        .setInt(HttpHeaderNames.CONTENT_LENGTH, body.length)
        .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
    client.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
  }
}
