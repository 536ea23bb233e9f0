package dev.thaw.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.testkit.FreePorts;
import dev.thaw.triton.protocol.ModelInferRequest;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * {@code thaw bench agent}: what {@code -javaagent:thaw-agent.jar} costs a Java server, measured against the same JVM
 * without it in the same run: the time from the JVM's exec to its {@code main} (alternating runs, medians), and the
 * example server's ModelInfer throughput at 16 clients (its ONNX Runtime sessions created and run through the agent's
 * instrumented methods), in alternating rounds.
 */
public final class AgentBench {
  private AgentBench() {}

  public record Options(int starts, int requests, int rounds, Path agentJar, Path workDir) {}

  public record Result(double startMsWithout, double startMsWith, double throughputWithout, double throughputWith,
      int starts, int requests, int rounds) {
    public String toJson() {
      ObjectNode o = new ObjectMapper().createObjectNode();
      o.put("start_ms_without", round(startMsWithout));
      o.put("start_ms_with", round(startMsWith));
      o.put("start_ms_added", round(startMsWith - startMsWithout));
      o.put("throughput_ratio", round(throughputWith / throughputWithout));
      o.put("throughput_without_per_s", round(throughputWithout));
      o.put("throughput_with_per_s", round(throughputWith));
      o.put("starts", starts);
      o.put("requests_per_round", requests);
      o.put("rounds", rounds);
      o.set("machine", new ObjectMapper().valueToTree(Machine.description()));
      return o.toString();
    }
  }

  public static Result run(Options o, PrintStream log) throws Exception {
    if (!Files.isRegularFile(o.agentJar())) {
      throw new IOException("no agent jar at " + o.agentJar() + ": build it (./mvnw -pl javaagent -am package)");
    }
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    String cp = System.getProperty("java.class.path");
    List<Double> without = new ArrayList<>();
    List<Double> with = new ArrayList<>();
    for (int i = 0; i < o.starts() + 1; i++) { // the first pair warms the file system's cache, not counted
      double w = startMs(List.of(java.toString(), "-cp", cp, StartProbe.class.getName()));
      double a = startMs(List.of(java.toString(), "-javaagent:" + o.agentJar(), "-cp", cp,
          StartProbe.class.getName()));
      if (i > 0) {
        without.add(w);
        with.add(a);
      }
    }
    double startWithout = median(without);
    double startWith = median(with);
    log.printf(Locale.ROOT, "bench agent: exec to main %.0f ms without the agent, %.0f ms with it (medians of %d)%n",
        startWithout, startWith, o.starts());

    Path repo = o.workDir().resolve("repository");
    MlpSpec spec = MlpSpec.forSize(1L << 20, 7);
    if (!Files.isDirectory(repo.resolve("mlp"))) {
      MlpGenerator.generate(repo, "mlp", spec);
    }
    ModelInferRequest request = TritonBench.request(spec, "mlp", 1);
    double tWithout = 0;
    double tWith = 0;
    for (int round = 0; round < o.rounds(); round++) {
      tWithout += throughput(o, repo, request, null) / o.rounds();
      tWith += throughput(o, repo, request, o.agentJar()) / o.rounds();
    }
    log.printf(Locale.ROOT, "bench agent: ModelInfer at 16 clients %.0f/s without the agent, %.0f/s with it "
        + "(%.3f x)%n", tWithout, tWith, tWith / tWithout);
    return new Result(startWithout, startWith, tWithout, tWith, o.starts(), o.requests(), o.rounds());
  }

  /** Milliseconds from the exec of {@code cmd} to its {@code main} (it prints the wall clock there). */
  private static double startMs(List<String> cmd) throws IOException, InterruptedException {
    long before = System.currentTimeMillis();
    Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    String out = new String(p.getInputStream().readAllBytes()).strip();
    if (p.waitFor() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed with exit " + p.exitValue());
    }
    return Long.parseLong(out) - before;
  }

  /** The example server, with the agent or without, answering ModelInfer from 16 clients: requests per second. */
  private static double throughput(Options o, Path repo, ModelInferRequest request, Path agent)
      throws Exception {
    int[] ports = FreePorts.pick(2);
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC"));
    if (agent != null) {
      cmd.add("-javaagent:" + agent);
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "dev.thaw.examples.ortserver.OrtServer",
        "--model-repository=" + repo, "--http-port=" + ports[0], "--grpc-port=" + ports[1], "--allow-metrics=false",
        "--warmup"));
    try (ServerProcess server = ServerProcess.start(cmd, o.workDir().resolve(agent == null ? "server.log"
        : "server-agent.log"))) {
      ManagedChannel channel = TritonBench.channel(ports[1]);
      try {
        TritonBench.awaitReady(channel);
        TritonBench.latencies(channel, request, 2_000, 1); // warm-up: the JIT, both ways
        return TritonBench.latencies(channel, request, o.requests(), 16).perSecond();
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  private static double median(List<Double> values) {
    double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }

  private static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }
}
