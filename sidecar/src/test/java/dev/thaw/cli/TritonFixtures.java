package dev.thaw.cli;

import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.S3ProxyServer;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.jclouds.blobstore.BlobStore;

/**
 * What the tests of Thaw in front of Triton share: a Triton model repository in an S3 bucket (S3Proxy), the example
 * server standing in for {@code tritonserver}, {@code thaw triton} run as its own process, and Triton's HTTP calls.
 */
public final class TritonFixtures {
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  private TritonFixtures() {}

  /** Puts every file of {@code repository} into S3Proxy's bucket under {@code prefix} (no trailing slash). */
  public static void upload(S3ProxyServer s3, Path repository, String prefix) throws IOException {
    BlobStore bs = s3.blobStore();
    try (Stream<Path> files = Files.walk(repository)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        String key = prefix + "/" + repository.relativize(f);
        bs.putBlob(S3ProxyServer.BUCKET, bs.blobBuilder(key).payload(f.toFile()).contentLength(Files.size(f)).build());
      }
    }
  }

  /** Triton's S3 form of the repository {@link #upload} put under {@code prefix}. */
  public static String repositoryUrl(S3ProxyServer s3, String prefix) {
    return "s3://127.0.0.1:" + s3.port() + "/" + S3ProxyServer.BUCKET + "/" + prefix;
  }

  /** A {@code tritonserver} in {@code dir}: the example server, which takes Triton's flags and speaks its protocols. */
  public static Path tritonserver(Path dir) throws IOException {
    Path script = dir.resolve("tritonserver");
    Files.writeString(script, "#!/bin/sh\nexec '" + Path.of(System.getProperty("java.home"), "bin", "java")
        + "' -XX:-UsePerfData -Xmx256m --enable-native-access=ALL-UNNAMED -cp '" + System.getProperty("java.class.path")
        + "' dev.thaw.examples.ortserver.OrtServer --ort-native-dir='"
        + Path.of("target", "ort-natives").toAbsolutePath() + "' \"$@\"\n");
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
    return script;
  }

  /** Starts {@code thaw triton ARGS} in its own JVM, its output (stdout and stderr) to {@code log}. */
  static Process thaw(Path log, List<String> args) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
        "--enable-native-access=ALL-UNNAMED", "-Djava.library.path=/usr/lib/x86_64-linux-gnu",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(), "triton"));
    cmd.addAll(args);
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("AWS_ACCESS_KEY_ID", "thaw-test"); // S3Proxy checks none, the AWS SDK wants some
    pb.environment().put("AWS_SECRET_ACCESS_KEY", "thaw-test-secret");
    pb.environment().put("AWS_DEFAULT_REGION", "us-east-1");
    return pb.start();
  }

  public static HttpResponse<String> get(int port, String path) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
  }

  public static HttpResponse<String> post(int port, String path, String body) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .POST(HttpRequest.BodyPublishers.ofString(body)).timeout(Duration.ofSeconds(30)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** A KServe v2 JSON inference request: {@code batch} rows of the model's sample input. */
  public static String jsonInferRequest(MlpSpec spec, int batch) {
    StringBuilder data = new StringBuilder();
    for (float v : spec.sampleInput(batch)) {
      data.append(data.isEmpty() ? "" : ",").append(v);
    }
    return "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[" + batch + "," + spec.inputDim()
        + "],\"data\":[" + data + "]}]}";
  }
}
