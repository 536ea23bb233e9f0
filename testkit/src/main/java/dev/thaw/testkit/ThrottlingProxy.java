package dev.thaw.testkit;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * A TCP proxy on 127.0.0.1 that limits every connection's server-to-client direction to {@code bytesPerSecond} with
 * a token bucket of at most {@code burstBytes}: how object stores pace each connection. Requests (client to server)
 * pass unthrottled. One pair of platform threads per connection; copies through a direct buffer.
 */
public final class ThrottlingProxy implements AutoCloseable {
  private static final int SLICE = 64 << 10;

  private final ServerSocketChannel server;
  private final InetSocketAddress target;
  private final double bytesPerSecond;
  private final long burstBytes;
  private final Set<SocketChannel> open = ConcurrentHashMap.newKeySet();
  private final Thread acceptor;
  private final AtomicLong bytesToClients = new AtomicLong();
  private final AtomicLong firstByteNanos = new AtomicLong(Long.MAX_VALUE);
  private volatile boolean closed;

  public ThrottlingProxy(InetSocketAddress target, double bytesPerSecond, long burstBytes) throws IOException {
    if (burstBytes < SLICE) {
      throw new IllegalArgumentException("burst must be at least " + SLICE + " bytes");
    }
    this.target = target;
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
    this.server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0), 256);
    this.acceptor = Thread.ofPlatform().daemon().name("throttle-accept").start(this::accept);
  }

  public int port() {
    return ((InetSocketAddress) server.socket().getLocalSocketAddress()).getPort();
  }

  /** Bytes sent from the origin to clients since the last {@link #resetCounters()}. */
  public long bytesToClients() {
    return bytesToClients.get();
  }

  /** {@link System#nanoTime()} when the first byte after the last reset went to a client; empty if none did. */
  public java.util.OptionalLong firstByteNanos() {
    long t = firstByteNanos.get();
    return t == Long.MAX_VALUE ? java.util.OptionalLong.empty() : java.util.OptionalLong.of(t);
  }

  public void resetCounters() {
    bytesToClients.set(0);
    firstByteNanos.set(Long.MAX_VALUE);
  }

  private void accept() {
    while (!closed) {
      SocketChannel client;
      try {
        client = server.accept();
      } catch (IOException e) {
        return;
      }
      try {
        SocketChannel upstream = SocketChannel.open(target);
        for (SocketChannel c : new SocketChannel[] {client, upstream}) {
          c.setOption(StandardSocketOptions.TCP_NODELAY, true);
          open.add(c);
        }
        Thread.ofPlatform().daemon().name("throttle-up").start(() -> pump(client, upstream, false));
        Thread.ofPlatform().daemon().name("throttle-down").start(() -> pump(upstream, client, true));
      } catch (IOException e) {
        quietClose(client);
      }
    }
  }

  private void pump(SocketChannel from, SocketChannel to, boolean throttled) {
    ByteBuffer buf = ByteBuffer.allocateDirect(SLICE);
    double tokens = burstBytes;
    long last = System.nanoTime();
    try {
      while (true) {
        buf.clear();
        int n = from.read(buf);
        if (n < 0) {
          break;
        }
        if (throttled) {
          long now = System.nanoTime();
          tokens = Math.min(burstBytes, tokens + (now - last) * bytesPerSecond / 1e9);
          last = now;
          tokens -= n;
          if (tokens < 0) {
            // wait until the bucket is back at zero: the data goes out at the rate, never above the burst
            long waitNanos = (long) (-tokens / bytesPerSecond * 1e9);
            long until = now + waitNanos;
            while ((now = System.nanoTime()) < until) {
              LockSupport.parkNanos(until - now);
            }
          }
        }
        buf.flip();
        while (buf.hasRemaining()) {
          to.write(buf);
        }
        if (throttled) {
          long now = System.nanoTime();
          firstByteNanos.accumulateAndGet(now, Math::min);
          bytesToClients.addAndGet(n);
        }
      }
      // half-close so the other direction can finish
      to.shutdownOutput();
    } catch (ClosedChannelException e) {
      // the other side ended the connection
    } catch (IOException e) {
      quietClose(from);
      quietClose(to);
    }
  }

  private void quietClose(SocketChannel c) {
    open.remove(c);
    try {
      c.close();
    } catch (IOException e) {
      // ignore
    }
  }

  @Override
  public void close() {
    closed = true;
    try {
      server.close();
    } catch (IOException e) {
      // ignore
    }
    acceptor.interrupt();
    for (SocketChannel c : Set.copyOf(open)) {
      quietClose(c);
    }
  }
}
