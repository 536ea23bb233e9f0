package dev.thaw.agent.bootstrap;

import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * What the code the agent adds to a library calls: on the class path the JVM gave the agent, so that it resolves from
 * the library's class loader, and typed only with the JDK's interfaces, so that the agent's internals (in their own
 * class loader) can stand behind it. Never throws into the library; an inference costs one volatile read once every
 * loaded model has answered its first.
 */
public final class ModelLoadHooks {
  private ModelLoadHooks() {}

  // classes, not lambdas: a lambda's first use costs the JVM tens of milliseconds at start
  private static volatile UnaryOperator<String> paths = new Unchanged();
  private static volatile BiConsumer<String, Object> loads = new Ignored();
  private static volatile Consumer<Object> inferences = new Ignored();
  private static volatile java.util.function.Function<String, String> skipped = new NoReason();
  private static volatile boolean awaitingInference;

  private static final class Unchanged implements UnaryOperator<String> {
    @Override
    public String apply(String location) {
      return location;
    }
  }

  private static final class NoReason implements java.util.function.Function<String, String> {
    @Override
    public String apply(String location) {
      return null;
    }
  }

  private static final class Ignored implements BiConsumer<String, Object>, Consumer<Object> {
    @Override
    public void accept(String path, Object model) {}

    @Override
    public void accept(Object model) {}
  }

  /** Set once by the agent as it starts. */
  public static void install(UnaryOperator<String> modelPaths, java.util.function.Function<String, String> whySkipped,
      BiConsumer<String, Object> loaded, Consumer<Object> inferred) {
    paths = modelPaths;
    skipped = whySkipped;
    loads = loaded;
    inferences = inferred;
  }

  /** Whether a loaded model's first inference is still to be reported (the agent keeps it up to date). */
  public static void awaitingInference(boolean awaiting) {
    awaitingInference = awaiting;
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

  /** As {@link #modelPath(String)} for a path. */
  public static java.nio.file.Path modelPath(java.nio.file.Path location) {
    if (location == null) {
      return null;
    }
    try {
      String given = location.toString();
      String mapped = paths.apply(given);
      return mapped.equals(given) ? location : java.nio.file.Path.of(mapped);
    } catch (Throwable t) {
      return location;
    }
  }

  /**
   * As {@link #modelPath(String)} for a model URL ({@code file:///models/x}, {@code thaw://NAME:TAG/path}): a URL
   * Thaw serves becomes the {@code file:} URL of the mount's path.
   */
  public static String modelUrl(String url) {
    if (url == null) {
      return null;
    }
    try {
      String location = url.startsWith("file://") ? url.substring("file://".length())
          : url.startsWith("file:") ? url.substring("file:".length()) : url;
      String mapped = paths.apply(location);
      return mapped.equals(location) ? url : "file://" + mapped;
    } catch (Throwable t) {
      return url;
    }
  }

  /** A library loaded the model at {@code path} as {@code model} (its session, its handle). */
  public static void loaded(String path, Object model) {
    try {
      loads.accept(path, model);
    } catch (Throwable t) {
      // the agent's own trouble
    }
  }

  /**
   * A library failed to load {@code location}: when Thaw should have served it and could not, its reason joins the
   * library's own exception as a suppressed one (the library's exception is what the application sees).
   */
  public static void failed(String location, Throwable thrown) {
    try {
      String why = skipped.apply(location);
      if (why != null && thrown != null) {
        thrown.addSuppressed(new IllegalStateException("Thaw did not serve " + location + ": " + why));
      }
    } catch (Throwable t) {
      // the agent's own trouble
    }
  }

  /** {@code model} answered an inference. */
  public static void inferred(Object model) {
    if (!awaitingInference) {
      return;
    }
    try {
      inferences.accept(model);
    } catch (Throwable t) {
      // the agent's own trouble
    }
  }
}
