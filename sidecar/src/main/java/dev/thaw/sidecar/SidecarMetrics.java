package dev.thaw.sidecar;

import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import jakarta.inject.Singleton;
import java.util.concurrent.TimeUnit;

/** The sidecar's meters, scraped as Prometheus text at {@code /metrics}. */
@Singleton
public final class SidecarMetrics {
  private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
  private final Timer chunkFetch = Timer.builder("thaw.chunk.fetch")
      .description("Time to fetch, verify and cache one chunk from the origin")
      .publishPercentileHistogram()
      .register(registry);

  PrometheusMeterRegistry registry() {
    return registry;
  }

  void chunkFetched(long nanos) {
    chunkFetch.record(nanos, TimeUnit.NANOSECONDS);
  }

  /** A cold start's phase ended, having taken {@code nanos}. */
  void phase(String phase, long nanos) {
    Timer.builder("thaw.cold_start.phase").description("Duration of each phase of a cold start")
        .tag("phase", phase).register(registry).record(nanos, TimeUnit.NANOSECONDS);
  }

  String scrape() {
    return registry.scrape();
  }
}
