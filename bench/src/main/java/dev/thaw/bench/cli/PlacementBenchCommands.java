package dev.thaw.bench.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.cli.JsonOut;
import dev.thaw.cli.SolverOptions;
import dev.thaw.cli.Units;
import dev.thaw.placement.Model;
import dev.thaw.placement.sim.ModelSizes;
import dev.thaw.placement.sim.ScaleBench;
import dev.thaw.placement.sim.Simulation;
import dev.thaw.placement.sim.Simulator;
import dev.thaw.placement.sim.SyntheticCluster;
import dev.thaw.placement.sim.Trace;
import dev.thaw.placement.sim.Traces;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code thaw placement bench} and {@code thaw placement simulate}: how the solver fares on generated clusters and on
 * traces, added under the product's {@code thaw placement} (see {@link BenchCommands}).
 */
final class PlacementBenchCommands {
  private PlacementBenchCommands() {}

  @Command(name = "bench", mixinStandardHelpOptions = true,
      description = {
        "Solve time and optimality gap of each solver on generated clusters.",
        "The clusters: mixed GPU kinds over zones, Zipf popularity, cached weights and snapshots, a previous plan "
            + "running (see docs/placement.md); each solver is measured against the best bound any of them proved. "
            + "With --json stdout gets one object whose keys are the sizes (100x50, ...), each with solve_s and gap "
            + "of the chosen solver and every solver's figures."
      })
  static final class Bench implements Callable<Integer> {
    @Option(names = "--sizes", paramLabel = "LIST", split = ",", defaultValue = "100x50,1000x200,1000x500,5000x500",
        description = "NODESxMODELS, comma-separated. Default: ${DEFAULT-VALUE}.")
    List<String> sizes;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--max-exact-pairs", paramLabel = "N", defaultValue = "500000",
        description = "Above this many node-model pairs CP-SAT and SCIP are not run. Default: ${DEFAULT-VALUE}.")
    long maxExactPairs;

    @Option(names = "--json", description = "Print one JSON object on stdout.")
    boolean json;

    @CommandLine.Mixin SolverOptions solver;

    @Override
    public Integer call() throws Exception {
      List<ScaleBench.Size> parsed;
      try {
        parsed = sizes.stream().map(ScaleBench::parse).toList();
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(new CommandLine(this), e.getMessage());
      }
      Map<String, Object> r = ScaleBench.run(parsed, seed, solver.options(), solver.solverKind(), maxExactPairs,
          System.err);
      if (json) {
        JsonOut.print(System.out, (ObjectNode) JsonOut.MAPPER.valueToTree(r));
      }
      return 0;
    }
  }

  @Command(name = "simulate", mixinStandardHelpOptions = true,
      description = {
        "Replay a trace of requests against a generated cluster once per policy.",
        "The cluster: --nodes, mixed GPU kinds over zones, caches as --initial-caches says; every policy gets the "
            + "same autoscaler, keep-alive, caches and snapshots (see docs/placement.md). --trace is a CSV with a "
            + "header timestamp,model[,service_s] (epoch seconds or YYYY-MM-DD HH:MM:SS[.fraction]), an Azure LLM "
            + "trace (TIMESTAMP,ContextTokens,GeneratedTokens; models assigned by Zipf popularity over --models), or "
            + "'synthetic' (--requests over --days, Zipf popularity, bursts). Model sizes and boot times come from "
            + "--model-sizes or the default distribution, drawn per model id. With --json stdout gets one object "
            + "whose keys are the policy names, each with cold_starts, cold_start_seconds, p99_added_latency_s, "
            + "origin_bytes, gpu_seconds and more."
      })
  static final class Simulate implements Callable<Integer> {
    @Option(names = "--trace", required = true, paramLabel = "FILE|synthetic", description = "The requests to replay.")
    String trace;

    @Option(names = "--nodes", required = true, paramLabel = "N", description = "Nodes of the generated cluster.")
    int nodes;

    @Option(names = "--models", paramLabel = "M", defaultValue = "50",
        description = "Models, for traces without model ids (Azure, synthetic). Default: ${DEFAULT-VALUE}.")
    int models;

    @Option(names = "--zipf", paramLabel = "S", defaultValue = "1.0",
        description = "The Zipf exponent of model popularity, for traces without model ids. Default: ${DEFAULT-VALUE}.")
    double zipf;

    @Option(names = "--requests", paramLabel = "N", defaultValue = "30000",
        description = "Requests of a synthetic trace. Default: ${DEFAULT-VALUE}.")
    int requests;

    @Option(names = "--days", paramLabel = "D", defaultValue = "21",
        description = "Days a synthetic trace spans. Default: ${DEFAULT-VALUE}.")
    double days;

    @Option(names = "--burstiness", paramLabel = "P", defaultValue = "0.05",
        description = "A synthetic trace's chance per minute of a burst of 10x the rate. Default: ${DEFAULT-VALUE}.")
    double burstiness;

    @Option(names = "--policy", paramLabel = "LIST", split = ",", defaultValue = "all",
        description = "all, or some of thaw, spread, image_locality, startup_greedy, random, startup_greedy_prestaged.")
    List<String> policies;

    @Option(names = "--keep-alive", paramLabel = "DURATION", defaultValue = "10m", converter = Units.DurationConverter.class,
        description = "How long an idle replica stays before it is stopped. Default: ${DEFAULT-VALUE}.")
    Duration keepAlive;

    @Option(names = "--model-sizes", paramLabel = "FILE",
        description = "A CSV model,weights_gb[,boot_s][,snapshot_gb][,gpus] giving the trace's models their sizes; models"
            + " it does not name get the default distribution (see docs/placement.md).")
    Path modelSizes;

    @Option(names = "--initial-caches", paramLabel = "empty|warm", defaultValue = "warm",
        description = "The nodes' caches at the start: warm (as a running cluster serving the trace's mix would have"
            + " them: each node three of the models it can run, by their share of requests, half with a snapshot) or"
            + " empty. Default: ${DEFAULT-VALUE}.")
    String initialCaches;

    @Option(names = "--replan", paramLabel = "DURATION", defaultValue = "1h", converter = Units.DurationConverter.class,
        description = "How often the pre-staging policies plan at the latest; a demand change plans sooner, at most"
            + " once a minute. Default: ${DEFAULT-VALUE}.")
    Duration replan;

    @Option(names = "--service-time", paramLabel = "SECONDS", defaultValue = "2",
        description = "Seconds a request takes when the trace does not say. Default: ${DEFAULT-VALUE}.")
    double serviceTime;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--svg", paramLabel = "FILE", description = "Also draw cold-start seconds per policy as an SVG bar chart.")
    Path svg;

    @Option(names = "--json", description = "Print one JSON object on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      if (nodes < 1) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--nodes must be at least 1");
      }
      List<String> chosen = policies.equals(List.of("all")) ? Simulation.POLICIES : policies;
      for (String p : chosen) {
        if (!Simulation.POLICIES.contains(p)) {
          throw new CommandLine.ParameterException(new CommandLine(this), "unknown policy " + p + "; the policies are "
              + String.join(", ", Simulation.POLICIES));
        }
      }
      Trace t = trace.equals("synthetic")
          ? Traces.synthetic(requests, days * 86_400, models, zipf, burstiness, seed)
          : Traces.read(Path.of(trace), models, zipf, seed);
      if (!initialCaches.equals("warm") && !initialCaches.equals("empty")) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--initial-caches is warm or empty, not "
            + initialCaches);
      }
      var given = modelSizes == null ? Map.<String, Model>of()
          : ModelSizes.read(modelSizes);
      var modelList = Simulation.modelsFor(t, seed, given);
      var unused = new java.util.TreeSet<>(given.keySet());
      unused.removeAll(t.models());
      if (!unused.isEmpty()) {
        System.err.println("simulate: " + modelSizes + " names models the trace never asks for: " + unused);
      }
      var cluster = SyntheticCluster.nodes(nodes, seed);
      if (initialCaches.equals("warm")) {
        cluster = SyntheticCluster.warm(cluster, modelList, t, seed);
      }
      System.err.printf(Locale.ROOT, "simulate: %d requests over %.1f days for %d models on %d nodes%s%n",
          t.requests().size(), t.duration() / 86_400, modelList.size(), nodes,
          t.modelIdsFromTrace() ? "" : String.format(Locale.ROOT, " (models assigned by Zipf popularity, exponent %s,"
              + " seed %d)", zipf, seed));
      var options = new Simulator.Options(serviceTime, 4, keepAlive.toNanos() / 1e9,
          replan.toNanos() / 1e9, 50e6, 60);
      var results = Simulation.run(cluster, modelList, t, options, chosen, seed);
      ObjectNode out = JsonOut.object();
      System.err.printf(Locale.ROOT, "%-26s %11s %22s %14s %9s %9s %12s %12s %9s%n", "policy", "cold starts",
          "snap/local/peer/origin", "cold-start s", "floor s", "p99 s", "origin GB", "GPU-hours", "sim s");
      results.forEach((name, r) -> {
        out.set(name, JsonOut.MAPPER.valueToTree(r.toMap()));
        var tiers = r.coldStartsByTier();
        System.err.printf(Locale.ROOT, "%-26s %11d %22s %14.0f %9.0f %9.1f %12.1f %12.0f %9.1f%n", name, r.coldStarts(),
            tiers.get("snapshot") + "/" + tiers.get("local") + "/" + tiers.get("peer") + "/" + tiers.get("origin"),
            r.coldStartSeconds(), r.coldStartFloorSeconds(), r.p99AddedLatency(), r.originBytes() / 1e9, r.gpuSeconds() / 3600, r.simulateSeconds());
      });
      if (svg != null) {
        java.nio.file.Files.writeString(svg, barChart("Cold-start seconds per policy: " + t.requests().size()
            + " requests, " + modelList.size() + " models, " + nodes + " nodes", results));
        System.err.println("simulate: chart in " + svg);
      }
      if (json) {
        JsonOut.print(System.out, out);
      }
      return 0;
    }
  }

  /** A horizontal bar chart of each policy's cold-start seconds, as SVG. */
  static String barChart(String title, Map<String, Simulator.Result> results) {
    double max = results.values().stream().mapToDouble(r -> r.coldStartSeconds()).max().orElse(1);
    StringBuilder b = new StringBuilder();
    int rowH = 28;
    int height = 50 + rowH * results.size();
    b.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"%d\""
        + " font-family=\"sans-serif\" font-size=\"13\">%n", height));
    b.append("<text x=\"10\" y=\"20\" font-weight=\"bold\">").append(escape(title)).append("</text>\n");
    int y = 40;
    for (var e : results.entrySet()) {
      double w = 460 * e.getValue().coldStartSeconds() / Math.max(1e-9, max);
      b.append(String.format(Locale.ROOT, "<text x=\"10\" y=\"%d\">%s</text>%n", y + 17, escape(e.getKey())));
      b.append(String.format(Locale.ROOT, "<rect x=\"200\" y=\"%d\" width=\"%.1f\" height=\"20\" fill=\"%s\"/>%n", y + 3,
          w, e.getKey().equals("thaw") ? "#e15759" : "#4e79a7"));
      b.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\">%.0f s</text>%n", 206 + w, y + 17,
          e.getValue().coldStartSeconds()));
      y += rowH;
    }
    return b.append("</svg>\n").toString();
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }
}
