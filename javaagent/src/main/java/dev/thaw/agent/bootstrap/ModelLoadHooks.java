package dev.thaw.agent.bootstrap;

import java.util.function.UnaryOperator;

/**
 * What the code the agent adds to a library's model load calls: on the boot class path, so that it resolves from
 * any class loader, and typed only with the JDK's interfaces, so that the agent's internals (in their own class
 * loader) can stand behind it. Never throws into the library.
 */
public final class ModelLoadHooks {
  private ModelLoadHooks() {}

  private static volatile UnaryOperator<String> paths = UnaryOperator.identity();

  /** Set once by the agent as it starts. */
  public static void install(UnaryOperator<String> modelPaths) {
    paths = modelPaths;
  }

  /**
   * The location a library should open for {@code location}: the path of Thaw's mount for a location Thaw serves,
   * else {@code location} unchanged.
   */
  public static String modelPath(String location) {
    if (location == null) {
      return null;
    }
    try {
      return paths.apply(location);
    } catch (Throwable t) {
      return location; // the agent's trouble is never the library's: it was reported where it happened
    }
  }
}
