package dev.thaw.agent;

import java.io.File;
import java.lang.instrument.Instrumentation;
import java.util.jar.JarFile;

/**
 * {@code -javaagent:thaw-agent.jar[=OPTIONS]}: with {@link InternalClassLoader} and {@link bootstrap.ModelLoadHooks},
 * the only classes of the agent the application's class loader sees (on the system class path, where the JVM puts an
 * agent's jar, so that a library loaded by it or below it can call the hooks). It
 * loads the rest of the agent, Byte Buddy included, in a class loader of its own and hands over: an application with
 * its own Byte Buddy, Jackson or anything else never meets the agent's copies. Whatever fails here is the agent's
 * failure alone: one line on stderr, and the application starts as if the agent were not there.
 */
public final class ThawAgent {
  private ThawAgent() {}

  /** Started with the JVM ({@code -javaagent}). */
  public static void premain(String options, Instrumentation instrumentation) {
    start(options, instrumentation, false);
  }

  /** Loaded into a running JVM ({@code thaw attach PID}). */
  public static void agentmain(String options, Instrumentation instrumentation) {
    start(options, instrumentation, true);
  }

  private static void start(String options, Instrumentation instrumentation, boolean attached) {
    try {
      File jar = new File(ThawAgent.class.getProtectionDomain().getCodeSource().getLocation().toURI());
      // The hooks stay on the class path the JVM put the agent on: appending the jar to the boot class path would
      // turn class data sharing off for the application's classes (slower starts, and a JVM warning).
      ClassLoader internal = new InternalClassLoader(new JarFile(jar), ThawAgent.class.getClassLoader());
      internal.loadClass("dev.thaw.agent.internal.Installer")
          .getMethod("install", String.class, Instrumentation.class, boolean.class)
          .invoke(null, options, instrumentation, attached);
    } catch (Throwable t) {
      Throwable cause = t instanceof java.lang.reflect.InvocationTargetException i && i.getCause() != null
          ? i.getCause() : t;
      System.err.println("thaw-agent: not started, the application runs without it: " + cause);
    }
  }
}
