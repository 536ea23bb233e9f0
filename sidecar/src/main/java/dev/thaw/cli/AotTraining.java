package dev.thaw.cli;

import dev.thaw.fuse.LazyMount;
import dev.thaw.fuse.MountOptions;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.Origins;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The training run for the JDK's ahead-of-time cache ({@code ./thaw} runs it once after a build with
 * {@code -XX:AOTCacheOutput}): the start-up path of the commands whose start time matters (push, resolve, mount,
 * read, unmount) on a tiny model, so their classes come loaded and linked from the cache. Not a user command.
 */
public final class AotTraining {
  private AotTraining() {}

  public static void main(String[] args) throws Exception {
    Path dir = Files.createTempDirectory("thaw-aot-training");
    try {
      Path model = Files.createDirectories(dir.resolve("model/weights"));
      Files.write(model.resolve("w.bin"), new byte[3 << 20]);
      Files.writeString(dir.resolve("model/config.json"), "{}");
      // The commands' own parsing and help, without running them.
      Main.run("mount", "--help");
      Main.run("ls", "--help");
      try (Origin origin = Origins.open(dir.resolve("origin").toUri().toString())) {
        new Pusher(origin, 1 << 20, 2, PushProgress.NONE).push(dir.resolve("model"), ModelName.parse("aot:v1"));
        ModelStore store = new ModelStore(origin);
        Manifest m = store.resolve(ModelName.parse("aot:v1"));
        try (ChunkCache cache = ChunkCache.open(dir.resolve("cache"), 1L << 30);
            ModelReader reader = ModelReader.open(m, origin, cache, ReaderOptions.DEFAULT)) {
          store.profile(m, cache.directory());
          if (Files.exists(Path.of("/dev/fuse"))) {
            try (LazyMount mount = LazyMount.mount(reader, dir.resolve("mnt"), MountOptions.DEFAULT)) {
              Files.readAllBytes(mount.mountPoint().resolve("weights/w.bin"));
            } catch (IOException e) {
              System.err.println("thaw: AOT training could not mount (" + e.getMessage() + "); the cache covers the rest");
            }
          }
        }
      }
      trainS3Client();
      trainS3Reads(dir);
      trainRestore(dir);
    } finally {
      deleteTree(dir);
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    try (var files = Files.walk(dir)) {
      for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  /**
   * What {@code thaw restore} runs before CRIU and after it (reading the snapshot's metadata, polling the
   * restored server over HTTP), so a restore does not spend its first second loading classes.
   */
  private static void trainRestore(Path dir) throws Exception {
    Main.run("restore", "--help");
    Main.run("checkpoint", "--help");
    // Not the snapshot cipher: AES-GCM trained into the cache ran three times slower afterwards (JDK 25), its
    // intrinsics apparently not applied to methods the cache had profiled.
    com.sun.net.httpserver.HttpServer http = com.sun.net.httpserver.HttpServer.create(
        new java.net.InetSocketAddress("127.0.0.1", 0), 0);
    http.createContext("/", x -> {
      byte[] body = "{\"outputs\":[]}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
      x.sendResponseHeaders(200, body.length);
      x.getResponseBody().write(body);
      x.close();
    });
    http.start();
    try {
      String url = "http://127.0.0.1:" + http.getAddress().getPort();
      dev.thaw.checkpoint.Probe.awaitReady(url + "/v2/health/ready", java.time.Duration.ofSeconds(10));
      new dev.thaw.checkpoint.Probe(url + "/v2/models/m/infer", "{}").ask(java.time.Duration.ofSeconds(10));
      dev.thaw.checkpoint.SnapshotMetadata.parse(JsonOut.MAPPER.writeValueAsBytes(new dev.thaw.checkpoint.SnapshotMetadata(
          java.util.Map.of(), java.util.List.of("server"), url, new dev.thaw.checkpoint.Probe(url, "{}"), "{}",
          java.util.List.of(), java.util.List.of())));
    } finally {
      http.stop(0);
    }
  }

  /**
   * A mount from s3:// as the bench and a deployment make one: the tag, the manifest and ranged chunk reads answered
   * by a minimal S3 responder over the pushed model. Without answers the cache lacked the response path (unmarshalling,
   * the response stream, several hundred lambdas), which a mount then spent its first few hundred milliseconds making.
   */
  private static void trainS3Reads(Path dir) throws Exception {
    Path objects = dir.resolve("origin");
    com.sun.net.httpserver.HttpServer http = com.sun.net.httpserver.HttpServer.create(
        new java.net.InetSocketAddress("127.0.0.1", 0), 0);
    String bucketPrefix = "/aot-training/model/";
    http.createContext("/", x -> {
      try (x) {
        String path = x.getRequestURI().getPath();
        Path file = path.startsWith(bucketPrefix) ? objects.resolve(path.substring(bucketPrefix.length())).normalize() : null;
        if (file == null || !file.startsWith(objects) || !Files.isRegularFile(file)) {
          x.sendResponseHeaders(404, -1);
          return;
        }
        byte[] body = Files.readAllBytes(file);
        int from = 0;
        int to = body.length - 1;
        String range = x.getRequestHeaders().getFirst("Range");
        int status = 200;
        if (range != null && range.startsWith("bytes=")) {
          String[] r = range.substring(6).split("-");
          from = Integer.parseInt(r[0]);
          to = Math.min(to, Integer.parseInt(r[1]));
          status = 206;
          x.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + to + "/" + body.length);
        }
        x.getResponseHeaders().set("ETag", "\"" + Integer.toHexString(java.util.Arrays.hashCode(body)) + "\"");
        x.getResponseHeaders().set("Content-Type", "application/octet-stream");
        boolean head = x.getRequestMethod().equals("HEAD");
        x.sendResponseHeaders(status, head ? -1 : to - from + 1);
        if (!head) {
          x.getResponseBody().write(body, from, to - from + 1);
        }
      }
    });
    http.start();
    System.setProperty("aws.accessKeyId", "aot-training");
    System.setProperty("aws.secretAccessKey", "aot-training");
    try (Origin s3 = Origins.open("s3://aot-training/model/?endpoint=http://127.0.0.1:" + http.getAddress().getPort()
        + "&path-style=true&region=us-east-1")) {
      Manifest m = new ModelStore(s3).resolve(ModelName.parse("aot:v1"));
      try (ChunkCache cache = ChunkCache.open(dir.resolve("cache-s3"), 1L << 30);
          ModelReader reader = ModelReader.open(m, s3, cache, ReaderOptions.DEFAULT)) {
        if (Files.exists(Path.of("/dev/fuse"))) {
          try (LazyMount mount = LazyMount.mount(reader, Files.createDirectories(dir.resolve("mnt-s3")), MountOptions.DEFAULT)) {
            Files.readAllBytes(mount.mountPoint().resolve("weights/w.bin"));
          } catch (IOException e) {
            System.err.println("thaw: AOT training could not mount (" + e.getMessage() + "); the cache covers the rest");
          }
        } else {
          try (ModelReader.ModelFile f = reader.open("weights/w.bin")) {
            f.read(0, java.nio.ByteBuffer.allocate(1 << 20));
          }
        }
      }
    } finally {
      System.clearProperty("aws.accessKeyId");
      System.clearProperty("aws.secretAccessKey");
      http.stop(0);
    }
  }

  /**
   * The S3 client's start (credentials, endpoint rules, signing, marshalling, the HTTP client) is most of a cold
   * mount from s3://; one request to a port where nothing listens walks that path without any server.
   */
  private static void trainS3Client() {
    System.setProperty("aws.accessKeyId", "aot-training");
    System.setProperty("aws.secretAccessKey", "aot-training");
    try (Origin s3 = Origins.open("s3://aot-training/model/?endpoint=http://127.0.0.1:9&path-style=true&region=us-east-1",
        new dev.thaw.store.RetryPolicy(1, java.time.Duration.ofMillis(1), java.time.Duration.ofMillis(1)), 4)) {
      new ModelStore(s3).resolve(ModelName.parse("aot:v1"));
    } catch (IOException | RuntimeException expected) {
      // nothing listens there: the classes are loaded, which is all the training needs
    } finally {
      System.clearProperty("aws.accessKeyId");
      System.clearProperty("aws.secretAccessKey");
    }
  }
}
