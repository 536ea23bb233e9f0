package dev.thaw.triton;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
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
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
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

  private TritonHttpProxy(InetSocketAddress listen, InetSocketAddress upstream, int threads) throws IOException {
    this.upstream = upstream;
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
        Math.max(2, Runtime.getRuntime().availableProcessors()));
  }

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
                  new FromUpstream(client));
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
      if (toUpstream != null) {
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

    FromUpstream(Channel client) {
      this.client = client;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      client.write(msg, client.voidPromise());
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
      client.flush();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      client.config().setAutoRead(ctx.channel().isWritable()); // the upstream takes the body slowly
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
