package dev.thaw.testkit;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** nginx (Debian's) serving a directory read-only on 127.0.0.1 with range requests and keep-alive. */
public final class NginxServer implements AutoCloseable {
  private final Process process;
  private final int port;
  private final Path prefix;

  private NginxServer(Process process, int port, Path prefix) {
    this.process = process;
    this.port = port;
    this.prefix = prefix;
  }

  public int port() {
    return port;
  }

  public static NginxServer start(Path root, Path prefix, PrintStream log) throws IOException {
    String nginx = Tools.require("nginx", "nginx", log);
    Files.createDirectories(prefix.resolve("logs"));
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    String conf = """
        user root;
        worker_processes 2;
        daemon off;
        master_process on;
        pid %1$s/nginx.pid;
        error_log stderr warn;
        events { worker_connections 1024; }
        http {
          access_log off;
          sendfile on;
          tcp_nopush on;
          tcp_nodelay on;
          keepalive_requests 1000000;
          keepalive_timeout 120s;
          client_body_temp_path %1$s/client_body;
          proxy_temp_path %1$s/proxy;
          fastcgi_temp_path %1$s/fastcgi;
          uwsgi_temp_path %1$s/uwsgi;
          scgi_temp_path %1$s/scgi;
          types { }
          default_type application/octet-stream;
          server {
            listen 127.0.0.1:%2$d;
            root %3$s;
            location / { }
          }
        }
        """.formatted(prefix.toAbsolutePath(), port, root.toAbsolutePath());
    Path confFile = prefix.resolve("nginx.conf");
    Files.writeString(confFile, conf);
    Process p = new ProcessBuilder(nginx, "-e", "stderr", "-p", prefix.toAbsolutePath().toString(), "-c",
        confFile.toAbsolutePath().toString())
        .redirectErrorStream(true)
        .redirectOutput(prefix.resolve("logs/nginx.out").toFile())
        .start();
    NginxServer server = new NginxServer(p, port, prefix);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (System.nanoTime() < deadline) {
      if (!p.isAlive()) {
        throw new IOException("nginx exited: " + Files.readString(prefix.resolve("logs/nginx.out")).trim());
      }
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return server;
      } catch (IOException e) {
        try {
          Thread.sleep(50);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          break;
        }
      }
    }
    server.close();
    throw new IOException("nginx did not start listening on 127.0.0.1:" + port);
  }

  @Override
  public void close() {
    process.destroy(); // SIGTERM: nginx's master stops its workers
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
