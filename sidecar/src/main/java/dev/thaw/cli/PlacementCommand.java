package dev.thaw.cli;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.placement.Baselines;
import dev.thaw.placement.Cluster;
import dev.thaw.placement.MipPlacement;
import dev.thaw.placement.Plan;
import dev.thaw.placement.PlacementPolicy;
import dev.thaw.placement.Plans;
import dev.thaw.placement.StartCost;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code thaw placement}: where replicas should go. How the solver fares ({@code bench}, {@code simulate}) is added by
 * the bench module, with the simulator it runs (placement-sim).
 */
@Command(name = "placement", mixinStandardHelpOptions = true,
    description = {
      "Locality-aware replica placement: an integer program solved with OR-Tools (see docs/placement.md).",
    },
    subcommands = PlacementCommand.Solve.class)
final class PlacementCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a placement command is required (see thaw placement --help)");
  }

  static final ObjectMapper STATE = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  @Command(name = "solve", mixinStandardHelpOptions = true,
      description = {
        "Print a placement plan for the cluster in a state file.",
        "The state: nodes, models with their demand, running replicas (the format is in docs/placement.md). The "
            + "plan: replicas per model and node, each new replica's start tier and seconds, moves, the plan's cost "
            + "and the solver's bound. --policy picks a baseline instead of Thaw's solver."
      })
  static final class Solve implements Callable<Integer> {
    @Option(names = "--input", required = true, paramLabel = "FILE", description = "The cluster's state, JSON.")
    Path input;

    @Option(names = "--policy", paramLabel = "NAME", defaultValue = "thaw",
        description = "thaw, spread, image_locality, startup_greedy or random. Default: ${DEFAULT-VALUE}.")
    String policy;

    @Option(names = "--json", description = "Print one JSON object on stdout.")
    boolean json;

    @CommandLine.Mixin SolverOptions solver;

    @Override
    public Integer call() throws Exception {
      Cluster c = read(input);
      PlacementPolicy p = switch (policy) {
        case "thaw" -> new MipPlacement(solver.options());
        case "spread" -> Baselines.spread(solver.costs());
        case "image_locality" -> Baselines.imageLocality(solver.costs());
        case "startup_greedy" -> Baselines.startupGreedy(solver.costs());
        case "random" -> Baselines.random(42, solver.costs());
        default -> throw new CommandLine.ParameterException(new CommandLine(this),
            "--policy must be thaw, spread, image_locality, startup_greedy or random, not " + policy);
      };
      Plan plan = p.place(c);
      List<String> broken = Plans.violations(c, plan);
      if (!broken.isEmpty()) {
        throw new IllegalStateException("the plan breaks constraints: " + broken); // never expected: a bug
      }
      StartCost start = new StartCost(c);
      ObjectNode out = JsonOut.object();
      out.put("policy", plan.policy());
      out.put("note", plan.note());
      out.put("cost", plan.cost());
      out.put("bound", plan.bound());
      out.put("gap", plan.gap());
      out.put("solve_s", plan.solveTime().toNanos() / 1e9);
      ObjectNode replicas = out.putObject("replicas");
      plan.replicas().forEach((m, perNode) -> {
        ObjectNode mn = replicas.putObject(m);
        perNode.forEach(mn::put);
      });
      var starts = out.putArray("starts");
      var moves = out.putArray("removed");
      for (var m : c.models()) {
        for (var n : c.nodes()) {
          int x = plan.count(m.id(), n.id());
          int r = c.running(m.id(), n.id());
          if (x > r) {
            starts.addObject().put("model", m.id()).put("node", n.id()).put("replicas", x - r)
                .put("tier", start.tier(m, n)).put("seconds", start.seconds(m, n));
          } else if (r > x) {
            moves.addObject().put("model", m.id()).put("node", n.id()).put("replicas", r - x);
          }
        }
      }
      if (json) {
        JsonOut.print(System.out, out);
      } else {
        System.out.println(JsonOut.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(out));
      }
      System.err.printf(Locale.ROOT, "placement: %s plan, cost %.1f (bound %.1f), %d new replicas, %d removed, in %.2f s%s%n",
          plan.policy(), plan.cost(), plan.bound(), starts.size(), moves.size(), plan.solveTime().toNanos() / 1e9,
          plan.note().isEmpty() ? "" : " (" + plan.note() + ")");
      return 0;
    }
  }

  static Cluster read(Path file) throws IOException {
    try {
      return STATE.readValue(file.toFile(), Cluster.class);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IOException("cannot read the cluster state " + file + ": " + e.getOriginalMessage()
          + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")"), e);
    }
  }
}
