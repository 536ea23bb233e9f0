package dev.thaw.bench;

import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.FreePorts;
import dev.thaw.testkit.S3ProxyServer;
import dev.thaw.testkit.ThrottlingProxy;
import dev.thaw.testkit.Tools;
import dev.thaw.triton.TritonCalls;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.domain.BlobMetadata;

/**
 * {@code thaw bench triton}'s scale from zero: a running Triton (the example server) is asked for a model it has not
 * loaded, three ways, each timed from the request to the correct answer, the page cache dropped before each:
 * <ol>
 *   <li>the baseline: the repository downloaded first (rclone, 8 parallel transfers), then loaded
 *       ({@code RepositoryModelLoad}) and asked;
 *   <li>through {@code thaw triton} on a lazy mount of the bucket (direct mode, cold cache, no profile): the request
 *       waits while Thaw has Triton load the model, whose bytes stream in as Triton reads them;
 *   <li>the same with the profile the run before recorded: the model's part of it is prefetched as its load begins.
 * </ol>
 * The origin is S3Proxy behind the demo's per-connection throttle. Thaw's own share of a lazy run (its checks, the
 * hold, forwarding) is what {@code thaw triton} reports for the cold start: the total less Triton's load call and
 * first inference.
 */
final class TritonScaleFromZero {
  private static final String MODEL = "mlp";
  private static final String PREFIX = "triton/";
  private static final Map<String, String> CREDENTIALS = Map.of("AWS_ACCESS_KEY_ID", "thaw-bench",
      "AWS_SECRET_ACCESS_KEY", "thaw-bench-secret", "AWS_REGION", "us-east-1", "AWS_DEFAULT_REGION", "us-east-1");
  private static final Pattern SERVED = Pattern.compile("model '" + MODEL + "' served from zero in (\\d+) ms \\(Triton's "
      + "load and first inference (\\d+) ms, Thaw's share (-?\\d+) ms([^)]*)\\)");

  private TritonScaleFromZero() {}

  /** One way of serving the model from zero: seconds to the answer, Thaw's share, and the machine's CPU seconds. */
  record Run(double seconds, double thawShareS, double cpuS) {}

  record Result(long modelBytes, double downloadS, Run downloadThenLoad, Run lazy, Run lazyProfile) {}

  static Result run(long modelBytes, Path workDir, PrintStream log) throws Exception {
    Tools.require("rclone", "rclone", log);
    Tools.require("fusermount3", "fuse3", log);
    Path work = workDir.toAbsolutePath().resolve("scale-" + modelBytes);
    Path repo = work.resolve("repository");
    MlpSpec spec = MlpSpec.forSize(modelBytes, 11);
    if (!Files.exists(work.resolve("repository.done"))) {
      ModelGenerator.deleteTree(repo);
      log.printf(Locale.ROOT, "bench triton: generating a %s model repository%n", human(modelBytes));
      MlpGenerator.generate(repo, MODEL, spec);
      Files.writeString(work.resolve("repository.done"), "");
    }
    long bytes = ColdStartDemo.files(repo).stream().mapToLong(f -> f.toFile().length()).sum();
    Path runs = work.resolve("runs");
    for (String name : List.of("lazy", "lazy-profile")) { // mounts a killed run left
      MountProcess.clear(runs.resolve("mnt-" + name).resolve("repository-0"));
    }
    ModelGenerator.deleteTree(runs);
    Files.createDirectories(runs);
    Path tritonserver = runs.resolve("tritonserver");
    Files.writeString(tritonserver, "#!/bin/sh\nexec " + ColdStartDemo.serverCommand(ColdStartDemo.Options.defaults())
        .stream().map(a -> "'" + a + "'").collect(Collectors.joining(" ")) + " \"$@\"\n");
    Files.setPosixFilePermissions(tritonserver, PosixFilePermissions.fromString("rwxr-xr-x"));

    try (S3ProxyServer s3 = S3ProxyServer.start(work.resolve("s3"));
         ThrottlingProxy origin = new ThrottlingProxy(new InetSocketAddress("127.0.0.1", s3.port()),
             Throttle.RATE_BYTES, Throttle.BURST_BYTES)) {
      upload(s3, repo);
      log.printf(Locale.ROOT, "bench triton: scale from zero of a %s model, the repository in S3Proxy behind a "
          + "throttle of %.0f MB/s per connection%n", human(bytes), Throttle.RATE_BYTES / 1e6);
      double[] download = new double[1];
      Run baseline = downloadThenLoad(runs, tritonserver, origin.port(), spec, bytes, download, log);
      Run lazy = throughThaw(runs, "lazy", tritonserver, origin.port(), spec, null, log);
      Run profiled = throughThaw(runs, "lazy-profile", tritonserver, origin.port(), spec,
          runs.resolve("cache-lazy").resolve("profiles"), log);
      log.printf(Locale.ROOT, "bench triton: from zero: download then load %.2f s (download %.2f s); lazy %.2f s; "
          + "lazy + profile %.2f s (%.2f x the baseline; Thaw's share %.1f %%)%n", baseline.seconds(), download[0],
          lazy.seconds(), profiled.seconds(), profiled.seconds() / baseline.seconds(),
          100 * profiled.thawShareS() / profiled.seconds());
      return new Result(bytes, download[0], baseline, lazy, profiled);
    } finally {
      for (String name : List.of("lazy", "lazy-profile")) {
        MountProcess.clear(runs.resolve("mnt-" + name).resolve("repository-0"));
      }
    }
  }

  /** The baseline: Triton running on an empty local repository; download it, load the model, ask. */
  private static Run downloadThenLoad(Path runs, Path tritonserver, int originPort, MlpSpec spec, long bytes,
      double[] downloadS, PrintStream log) throws Exception {
    Path dest = Files.createDirectories(runs.resolve("download"));
    int[] ports = FreePorts.pick(2);
    List<String> cmd = List.of(tritonserver.toString(), "--model-repository=" + dest, "--model-control-mode=explicit",
        "--http-address=127.0.0.1", "--http-port=" + ports[0], "--grpc-address=127.0.0.1", "--grpc-port=" + ports[1],
        "--allow-metrics=false");
    try (ServerProcess server = ServerProcess.start(cmd, runs.resolve("download-then-load.log"))) {
      ManagedChannel channel = TritonBench.channel(ports[1]);
      try {
        TritonBench.awaitReady(channel);
        Path conf = runs.resolve("rclone.conf");
        Files.writeString(conf, ColdStartDemo.rcloneConfig("bench", originPort));
        Machine.dropPageCache(log);
        Machine.Counters c0 = Machine.Counters.now();
        long t0 = System.nanoTime();
        ProcessBuilder pb = new ProcessBuilder("rclone", "copy", "bench:" + S3ProxyServer.BUCKET + "/" + PREFIX,
            dest.toString(), "--config", conf.toString(), "--transfers", "8", "--multi-thread-streams", "8",
            "--multi-thread-cutoff", "16M", "--log-level", "ERROR").redirectErrorStream(true)
            .redirectOutput(runs.resolve("rclone.log").toFile());
        pb.environment().remove("AWS_CA_BUNDLE"); // rclone fails while it is set
        Process rclone = pb.start();
        if (rclone.waitFor() != 0) {
          throw new IOException("rclone failed: " + Files.readString(runs.resolve("rclone.log")));
        }
        long downloaded = System.nanoTime();
        long got = ColdStartDemo.files(dest).stream().mapToLong(f -> f.toFile().length()).sum();
        if (got != bytes) {
          throw new IOException("rclone wrote " + got + " bytes into " + dest + ", expected " + bytes);
        }
        TritonCalls.call(channel, GRPCInferenceServiceGrpc.getRepositoryModelLoadMethod(),
            RepositoryModelLoadRequest.newBuilder().setModelName(MODEL).build(), Duration.ofMinutes(10));
        check(TritonCalls.call(channel, GRPCInferenceServiceGrpc.getModelInferMethod(), request(spec),
            Duration.ofMinutes(1)), spec);
        long answered = System.nanoTime();
        double cpu = cpuSeconds(c0);
        downloadS[0] = (downloaded - t0) / 1e9;
        log.printf(Locale.ROOT, "bench triton: download then load: %.2f s (download %.2f s, load and first answer "
            + "%.2f s), %.1f CPU-s%n", (answered - t0) / 1e9, downloadS[0], (answered - downloaded) / 1e9, cpu);
        return new Run((answered - t0) / 1e9, 0, cpu);
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  /**
   * {@code thaw triton} in front of Triton, the repository mounted from the bucket with a new cache (holding
   * {@code profiles} when given): once Triton is ready, the first request for the model, timed to its answer.
   */
  private static Run throughThaw(Path runs, String name, Path tritonserver, int originPort, MlpSpec spec,
      Path profiles, PrintStream log) throws Exception {
    Path cache = Files.createDirectories(runs.resolve("cache-" + name));
    if (profiles != null) {
      copyTree(profiles, cache.resolve("profiles"));
    }
    int[] ports = FreePorts.pick(3);
    List<String> cmd = new ArrayList<>(MountBench.thawCommand(null));
    cmd.addAll(List.of("triton", "--cache", cache.toString(), "--mount-root", runs.resolve("mnt-" + name).toString(),
        "--", tritonserver.toString(), "--model-repository=s3://127.0.0.1:" + originPort + "/"
            + S3ProxyServer.BUCKET + "/" + PREFIX.substring(0, PREFIX.length() - 1),
        "--http-address=127.0.0.1", "--http-port=" + ports[0], "--grpc-address=127.0.0.1", "--grpc-port=" + ports[1],
        "--metrics-address=127.0.0.1", "--metrics-port=" + ports[2]));
    Path logFile = runs.resolve(name + ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logFile.toFile());
    pb.environment().putAll(CREDENTIALS);
    pb.environment().remove("AWS_CA_BUNDLE");
    Process thaw = pb.start();
    ManagedChannel channel = TritonBench.channel(ports[1]);
    try {
      TritonBench.awaitReady(channel);
      Machine.dropPageCache(log);
      Machine.Counters c0 = Machine.Counters.now();
      long t0 = System.nanoTime();
      check(TritonCalls.call(channel, GRPCInferenceServiceGrpc.getModelInferMethod(), request(spec),
          Duration.ofMinutes(10)), spec);
      long answered = System.nanoTime();
      double cpu = cpuSeconds(c0);
      Matcher served = awaitLine(logFile, thaw);
      double thawShare = Long.parseLong(served.group(3)) / 1e3;
      log.printf(Locale.ROOT, "bench triton: %s: %.2f s to the answer; thaw triton says %s ms, of which Triton's %s ms "
          + "and Thaw's %s ms%s; %.1f CPU-s%n", name, (answered - t0) / 1e9, served.group(1), served.group(2),
          served.group(3), served.group(4), cpu);
      return new Run((answered - t0) / 1e9, thawShare, cpu);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      thaw.destroy(); // SIGTERM: Triton stops, the profile is saved, the mount ends
      if (!thaw.waitFor(90, TimeUnit.SECONDS)) {
        thaw.destroyForcibly();
        throw new IOException("thaw triton did not stop within 90 s of SIGTERM; see " + logFile);
      }
    }
  }

  /** Waits for thaw triton's line about the model's cold start (printed just after the answer went out). */
  private static Matcher awaitLine(Path logFile, Process thaw) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (System.nanoTime() < deadline) {
      Matcher m = SERVED.matcher(Files.readString(logFile));
      if (m.find()) {
        return m;
      }
      if (!thaw.isAlive()) {
        break;
      }
      Thread.sleep(50);
    }
    throw new IOException("thaw triton did not report the model's cold start; see " + logFile);
  }

  private static ModelInferRequest request(MlpSpec spec) {
    return TritonBench.request(spec, MODEL, 1);
  }

  /** The answer must be the model's: its output equals the reference computation. */
  private static void check(ModelInferResponse answer, MlpSpec spec) throws IOException {
    float[] expected = spec.reference(spec.sampleInput(1), 1);
    var out = answer.getRawOutputContents(0).asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    if (out.remaining() != expected.length) {
      throw new IOException("the answer has " + out.remaining() + " values, expected " + expected.length);
    }
    for (int i = 0; i < expected.length; i++) {
      if (Math.abs(out.get(i) - expected[i]) > 1e-3 * Math.max(1, Math.abs(expected[i]))) {
        throw new IOException("wrong answer: output " + i + " is " + out.get(i) + ", expected " + expected[i]);
      }
    }
  }

  private static void upload(S3ProxyServer s3, Path repo) throws IOException {
    BlobStore bs = s3.blobStore();
    for (Path f : ColdStartDemo.files(repo)) {
      String key = PREFIX + repo.relativize(f);
      long size = Files.size(f);
      BlobMetadata md = bs.blobMetadata(S3ProxyServer.BUCKET, key);
      if (md == null || md.getSize() == null || md.getSize() != size) {
        bs.putBlob(S3ProxyServer.BUCKET, bs.blobBuilder(key).payload(f.toFile()).contentLength(size).build());
      }
    }
  }

  private static void copyTree(Path from, Path to) throws IOException {
    Files.createDirectories(to);
    for (Path f : ColdStartDemo.files(from)) {
      Path target = to.resolve(from.relativize(f).toString());
      Files.createDirectories(target.getParent());
      Files.copy(f, target);
    }
  }

  /** Busy CPU seconds of the whole machine since {@code before} (every process: server, Thaw, origin, client). */
  private static double cpuSeconds(Machine.Counters before) {
    Machine.Counters now = Machine.Counters.now();
    return (now.cpuBusy() - before.cpuBusy()) / 100.0; // /proc/stat counts in USER_HZ (100 per second)
  }

  private static String human(long bytes) {
    return bytes >= 1L << 30 ? String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30))
        : String.format(Locale.ROOT, "%.0f MiB", bytes / (double) (1L << 20));
  }
}
