package dev.thaw.placement.sim;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Requests to replay against a cluster: when (seconds from the trace's first request), for which model, and how long
 * serving it takes (NaN: the simulator's default).
 *
 * @param modelIdsFromTrace whether the trace named the models, or they were assigned (by popularity) to bare arrivals
 */
public record Trace(List<Request> requests, boolean modelIdsFromTrace) {
  public record Request(double time, String model, double serviceSeconds) {}

  public Trace {
    requests = List.copyOf(requests);
  }

  /** The models the requests ask for, sorted. */
  public Set<String> models() {
    Set<String> out = new TreeSet<>();
    requests.forEach(r -> out.add(r.model()));
    return out;
  }

  /** Seconds from the first request to the last. */
  public double duration() {
    return requests.isEmpty() ? 0 : requests.getLast().time() - requests.getFirst().time();
  }
}
