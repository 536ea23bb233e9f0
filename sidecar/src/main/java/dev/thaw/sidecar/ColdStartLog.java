package dev.thaw.sidecar;

import jakarta.inject.Singleton;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Recent cold starts, each a timeline of events measured from its request: {@code mounted}, {@code first_byte},
 * {@code server_ready}, {@code first_inference}. Each event is kept once (the first time it happens); the phases
 * between them are what the status page draws and what {@code thaw_cold_start_phase_seconds} measures.
 */
@Singleton
public final class ColdStartLog {
  /** The events of a cold start, in order; a phase is named after the event that ends it. */
  static final List<String> EVENTS = List.of("mounted", "first_byte", "server_ready", "first_inference");
  private static final Map<String, String> PHASE_ENDING = Map.of("mounted", "mount", "first_byte", "first_read",
      "server_ready", "load", "first_inference", "first_inference");

  private final Deque<ColdStart> recent = new ArrayDeque<>();
  private final AtomicLong ids = new AtomicLong();
  private final SidecarMetrics metrics;
  private final int kept;

  ColdStartLog(SidecarMetrics metrics, SidecarConfig config) {
    this.metrics = metrics;
    this.kept = config.getColdStartsKept();
  }

  /** One cold start: what it was for and when each event happened. */
  public final class ColdStart {
    private final String id;
    private final String model;
    private final String mountId;
    private final Instant requestedAt;
    private final long requestedNanos;
    private final Map<String, Long> events = new LinkedHashMap<>(); // event -> nanos since the request
    private final Supplier<Map<String, Long>> bytes;

    private ColdStart(String id, String model, String mountId, Supplier<Map<String, Long>> bytes, long requestedNanos) {
      this.requestedNanos = requestedNanos;
      this.requestedAt = Instant.now().minusNanos(Math.max(0, System.nanoTime() - requestedNanos));
      this.id = id;
      this.model = model;
      this.mountId = mountId;
      this.bytes = bytes;
    }

    public String id() {
      return id;
    }

    String mountId() {
      return mountId;
    }

    /** Records {@code event} now; an event already recorded keeps its first time. */
    void mark(String event) {
      mark(event, System.nanoTime());
    }

    /** Records {@code event} at {@code nanoTime} ({@link System#nanoTime()}'s terms). */
    synchronized void mark(String event, long nanoTime) {
      if (!EVENTS.contains(event)) {
        throw new IllegalArgumentException("unknown cold-start event " + event + "; the events are " + EVENTS);
      }
      if (events.containsKey(event)) {
        return;
      }
      long at = Math.max(0, nanoTime - requestedNanos);
      long previous = 0;
      for (String e : EVENTS) {
        if (e.equals(event)) {
          break;
        }
        previous = events.getOrDefault(e, previous);
      }
      events.put(event, at);
      metrics.phase(PHASE_ENDING.get(event), Math.max(0, at - previous));
    }

    /** The timeline as the API shows it. */
    synchronized Map<String, Object> view() {
      Map<String, Object> v = new LinkedHashMap<>();
      v.put("id", id);
      v.put("model", model);
      v.put("mount", mountId);
      v.put("requested_at", requestedAt.toString());
      Map<String, Double> ms = new LinkedHashMap<>();
      ms.put("requested", 0.0);
      events.forEach((e, nanos) -> ms.put(e, nanos / 1e6));
      v.put("events_ms", ms);
      List<Map<String, Object>> phases = new ArrayList<>();
      double start = 0;
      for (String e : EVENTS) {
        Long end = events.get(e);
        if (end == null) {
          continue;
        }
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("name", PHASE_ENDING.get(e));
        p.put("start_ms", start);
        p.put("end_ms", end / 1e6);
        phases.add(p);
        start = end / 1e6;
      }
      v.put("phases", phases);
      v.put("complete", events.containsKey("first_inference") || events.containsKey("server_ready"));
      v.put("bytes", bytes.get());
      return v;
    }
  }

  /** Starts the timeline of a cold start of {@code model}; {@code bytes} says what it has read, per tier. */
  public ColdStart begin(String model, String mountId, Supplier<Map<String, Long>> bytes) {
    return begin(model, mountId, bytes, System.nanoTime());
  }

  /** As {@link #begin(String, String, Supplier)}, requested at {@code requestedNanos} ({@link System#nanoTime()}). */
  ColdStart begin(String model, String mountId, Supplier<Map<String, Long>> bytes, long requestedNanos) {
    ColdStart c = new ColdStart("cs" + ids.incrementAndGet(), model, mountId, bytes, requestedNanos);
    synchronized (recent) {
      recent.addFirst(c);
      while (recent.size() > kept) {
        recent.removeLast();
      }
    }
    return c;
  }

  /** The most recent first. */
  public List<ColdStart> recent() {
    synchronized (recent) {
      return List.copyOf(recent);
    }
  }

  public Optional<ColdStart> find(String id) {
    return recent().stream().filter(c -> c.id.equals(id)).findFirst();
  }

  /** The latest cold start of a mount. */
  Optional<ColdStart> latestOf(String mountId) {
    return recent().stream().filter(c -> mountId.equals(c.mountId)).findFirst();
  }
}
