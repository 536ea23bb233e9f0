package dev.thaw.cli;

import java.io.PrintStream;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Shows long work on stderr: a progress bar on a terminal, otherwise a plain line every few seconds. Never
 * writes to stdout, so {@code --json} output stays one JSON object.
 */
final class Progress implements AutoCloseable {
  private final String task;
  private final long total;
  private final AtomicLong done = new AtomicLong();
  private final ProgressBar bar;
  private final PrintStream err;
  private final long startNanos = System.nanoTime();
  private volatile long lastLine = System.nanoTime();

  Progress(String task, long total, boolean quiet) {
    this.task = task;
    this.total = total;
    this.err = System.err;
    boolean terminal = System.console() != null && System.console().isTerminal() && !quiet;
    this.bar = terminal
        ? new ProgressBarBuilder().setTaskName(task).setInitialMax(Math.max(1, total)).setUnit(" MiB", 1 << 20)
            .setStyle(ProgressBarStyle.ASCII).showSpeed().setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(System.err)).build()
        : null;
  }

  void add(long bytes) {
    long now = done.addAndGet(bytes);
    if (bar != null) {
      bar.stepBy(bytes);
      return;
    }
    long t = System.nanoTime();
    if (t - lastLine > 2_000_000_000L) {
      lastLine = t;
      double s = (t - startNanos) / 1e9;
      err.printf(Locale.ROOT, "%s: %s of %s (%.0f%%), %.1f MB/s%n", task, Units.bytes(now), Units.bytes(total),
          total == 0 ? 100.0 : 100.0 * now / total, Units.mbps(now, s));
    }
  }

  @Override
  public void close() {
    if (bar != null) {
      bar.close();
    }
  }
}
