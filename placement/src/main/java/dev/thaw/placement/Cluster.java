package dev.thaw.placement;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Nodes, models and the replicas running now ({@code running}: model id to node id to count).
 */
public record Cluster(List<Node> nodes, List<Model> models, Map<String, Map<String, Integer>> running) {
  public Cluster {
    nodes = List.copyOf(java.util.Objects.requireNonNull(nodes, "a cluster needs its nodes"));
    models = List.copyOf(java.util.Objects.requireNonNull(models, "a cluster needs its models"));
    // sorted maps: Map.copyOf's iteration order changes from run to run, and callers' results must not
    Map<String, Map<String, Integer>> r = new java.util.TreeMap<>();
    if (running != null) {
      running.forEach((m, perNode) -> r.put(m, java.util.Collections.unmodifiableMap(new java.util.TreeMap<>(perNode))));
    }
    running = java.util.Collections.unmodifiableMap(r);
    Set<String> ids = new TreeSet<>();
    for (Node n : nodes) {
      if (!ids.add("node:" + n.id())) {
        throw new IllegalArgumentException("two nodes are called " + n.id());
      }
    }
    for (Model m : models) {
      if (!ids.add("model:" + m.id())) {
        throw new IllegalArgumentException("two models are called " + m.id());
      }
    }
    for (var e : running.entrySet()) {
      if (!ids.contains("model:" + e.getKey())) {
        throw new IllegalArgumentException("a replica runs of an unknown model " + e.getKey());
      }
      for (String n : e.getValue().keySet()) {
        if (!ids.contains("node:" + n)) {
          throw new IllegalArgumentException("a replica of " + e.getKey() + " runs on an unknown node " + n);
        }
      }
    }
  }

  public Cluster(List<Node> nodes, List<Model> models) {
    this(nodes, models, Map.of());
  }

  public int running(String model, String node) {
    return running.getOrDefault(model, Map.of()).getOrDefault(node, 0);
  }

  /** Model id to how many nodes hold all of its weights: where a peer can serve them from. */
  Map<String, Integer> fullCopies() {
    Map<String, Integer> out = new HashMap<>();
    for (Node n : nodes) {
      n.cachedWeights().forEach((m, f) -> {
        if (f >= 1.0) {
          out.merge(m, 1, Integer::sum);
        }
      });
    }
    return out;
  }
}
