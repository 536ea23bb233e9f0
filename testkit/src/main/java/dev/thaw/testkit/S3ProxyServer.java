package dev.thaw.testkit;

import java.io.IOException;
import java.lang.reflect.Method;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.BlobStoreContext;

/**
 * S3Proxy (a real S3 protocol server) in this JVM over jclouds' filesystem backend, on 127.0.0.1, authentication off (the SDK still signs).
 * Logging is turned down to WARN first: S3Proxy's default DEBUG logging slows every request.
 */
public final class S3ProxyServer implements AutoCloseable {
  public static final String BUCKET = "thaw-bench";

  private final S3Proxy proxy;
  private final BlobStoreContext context;

  private S3ProxyServer(S3Proxy proxy, BlobStoreContext context) {
    this.proxy = proxy;
    this.context = context;
  }

  public static S3ProxyServer start(Path baseDir) throws Exception {
    quietLogging();
    Files.createDirectories(baseDir);
    Properties props = new Properties();
    props.setProperty("jclouds.filesystem.basedir", baseDir.toAbsolutePath().toString());
    BlobStoreContext context = ContextBuilder.newBuilder("filesystem").overrides(props).buildView(BlobStoreContext.class);
    BlobStore store = context.getBlobStore();
    store.createContainerInLocation(null, BUCKET);
    S3Proxy proxy = S3Proxy.builder()
        .blobStore(store)
        .endpoint(URI.create("http://127.0.0.1:0"))
        .awsAuthentication(AuthenticationType.NONE, null, null)
        .jettyMaxThreads(128)
        .build();
    proxy.start();
    while (!"STARTED".equals(proxy.getState())) {
      Thread.sleep(10);
    }
    // the AWS SDK's credential chain needs some credentials, even if S3Proxy ignores them
    if (System.getProperty("aws.accessKeyId") == null && System.getenv("AWS_ACCESS_KEY_ID") == null) {
      System.setProperty("aws.accessKeyId", "thaw-bench");
      System.setProperty("aws.secretAccessKey", "thaw-bench-secret");
    }
    return new S3ProxyServer(proxy, context);
  }

  public int port() {
    return proxy.getPort();
  }

  /** The origin URI for a prefix in the bucket. */
  public String originUri(String prefix) {
    return originUri(prefix, port());
  }

  /** The origin URI for a prefix in the bucket, reached through {@code port} (a throttle in front of this server). */
  public String originUri(String prefix, int port) {
    return "s3://" + BUCKET + "/" + prefix + "?endpoint=http://127.0.0.1:" + port + "&path-style=true&region=us-east-1";
  }

  /** The plain HTTP URL of an object (authentication is off, so curl needs no signature). */
  public String httpUrl(String prefix, String key) {
    return httpUrl(prefix, key, port());
  }

  /** The plain HTTP URL of an object, reached through {@code port}. */
  public String httpUrl(String prefix, String key, int port) {
    return "http://127.0.0.1:" + port + "/" + BUCKET + "/" + prefix + key;
  }

  /** The backing jclouds store, to place objects directly (no HTTP, no signing) when setting up a bench. */
  public BlobStore blobStore() {
    return context.getBlobStore();
  }

  /** Sets the root logger to WARN in logback or slf4j-simple, whichever backs SLF4J here. */
  static void quietLogging() {
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    try {
      Object factory = Class.forName("org.slf4j.LoggerFactory").getMethod("getILoggerFactory").invoke(null);
      if (factory.getClass().getName().equals("ch.qos.logback.classic.LoggerContext")) {
        Object root = factory.getClass().getMethod("getLogger", String.class).invoke(factory, "ROOT");
        Class<?> level = Class.forName("ch.qos.logback.classic.Level", true, factory.getClass().getClassLoader());
        Object warn = level.getField("WARN").get(null);
        Method set = root.getClass().getMethod("setLevel", level);
        set.invoke(root, warn);
      }
    } catch (ReflectiveOperationException | RuntimeException e) {
      // no SLF4J backend that we know: nothing to turn down
    }
  }

  @Override
  public void close() throws IOException {
    try {
      proxy.stop();
    } catch (Exception e) {
      throw new IOException("stopping S3Proxy failed", e);
    } finally {
      context.close();
    }
  }
}
