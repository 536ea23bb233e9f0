package dev.thaw.placement;

import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;

/**
 * Where replicas go: model id to node id to replica count, with what it costs ({@link Plans#cost}), the best lower
 * bound its solver proved (0 when none), how long solving took, and a note (why a fallback was used, for instance).
 */
public record Plan(String policy, Map<String, Map<String, Integer>> replicas, double cost, double bound,
    Duration solveTime, String note) {
  public Plan {
    Map<String, Map<String, Integer>> copy = new TreeMap<>();
    replicas.forEach((m, perNode) -> {
      Map<String, Integer> nonZero = new TreeMap<>();
      perNode.forEach((n, c) -> {
        if (c < 0) {
          throw new IllegalArgumentException("negative replica count for " + m + " on " + n);
        }
        if (c > 0) {
          nonZero.put(n, c);
        }
      });
      if (!nonZero.isEmpty()) {
        copy.put(m, java.util.Collections.unmodifiableMap(nonZero)); // sorted: iteration order is part of determinism
      }
    });
    replicas = java.util.Collections.unmodifiableMap(copy);
  }

  public int count(String model, String node) {
    return replicas.getOrDefault(model, Map.of()).getOrDefault(node, 0);
  }

  public int total(String model) {
    return replicas.getOrDefault(model, Map.of()).values().stream().mapToInt(Integer::intValue).sum();
  }

  /** The relative optimality gap, (cost - bound) / cost; 0 when the cost is 0. */
  public double gap() {
    return cost <= 0 ? 0 : Math.max(0, (cost - bound) / cost);
  }
}
