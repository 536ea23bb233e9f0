package dev.thaw.cli;

import java.util.Map;

/**
 * Commands that live outside the product: the bench module's {@code bench}, {@code demo}, {@code model}, {@code
 * placement bench} and {@code placement simulate}. {@link Main} finds them through {@link java.util.ServiceLoader}
 * when their jar is on the class path ({@code ./thaw} puts it there for those commands only), so the shipped class
 * path carries none of what only benchmarks need.
 */
public interface CommandPlugin {
  /**
   * The commands, in help order, by their path under {@code thaw}: {@code "demo"} for a command of its own, or
   * {@code "placement simulate"} for a subcommand of one of the product's commands ({@link ThawCommand#OPEN}).
   */
  Map<String, Class<?>> commands();
}
