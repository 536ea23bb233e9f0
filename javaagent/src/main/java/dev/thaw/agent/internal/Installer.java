package dev.thaw.agent.internal;

import static net.bytebuddy.matcher.ElementMatchers.isPublic;
import static net.bytebuddy.matcher.ElementMatchers.nameStartsWith;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.takesArgument;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.dynamic.Nexus;
import net.bytebuddy.utility.JavaModule;
import java.lang.instrument.Instrumentation;

/**
 * Sets the agent up: its settings, the hooks, and one instrumentation per library, each matched by the class's name
 * (never loaded by the agent), so that an application without the library is left exactly as it was.
 */
public final class Installer {
  private Installer() {}

  public static void install(String options, Instrumentation instrumentation, boolean attached) {
    AgentConfig config = AgentConfig.from(options, System.getenv());
    SidecarClient sidecar = new SidecarClient(config);
    ModelLocations locations = new ModelLocations(config, sidecar);
    WarmReports warm = new WarmReports(sidecar, locations);
    ModelLoadHooks.install(locations::resolve, warm::loaded, warm::inferred);
    // Byte Buddy's Nexus (type initializers for injected classes) is not used here, and setting it up touches
    // sun.misc.Unsafe, which Java 24 and later warn about. The property's name is the relocated copy's alone.
    System.setProperty(Nexus.PROPERTY, "true");
    new AgentBuilder.Default()
        .disableClassFormatChanges()
        .with(AgentBuilder.InjectionStrategy.Disabled.INSTANCE) // advice is inlined: nothing to inject
        .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
        .with(new Problems())
        .ignore(nameStartsWith("dev.thaw.agent.").or(nameStartsWith("java.")).or(nameStartsWith("jdk."))
            .or(nameStartsWith("sun.")))
        // ONNX Runtime: OrtEnvironment.createSession(String modelPath[, SessionOptions])
        .type(named("ai.onnxruntime.OrtEnvironment"))
        .transform(new AgentBuilder.Transformer.ForAdvice()
            .include(Installer.class.getClassLoader())
            .advice(isPublic().and(named("createSession")).and(takesArgument(0, String.class)),
                OnnxRuntimeSessionAdvice.class.getName()))
        // ... and OrtSession.run(...): a model's first inference
        .type(named("ai.onnxruntime.OrtSession"))
        .transform(new AgentBuilder.Transformer.ForAdvice()
            .include(Installer.class.getClassLoader())
            .advice(isPublic().and(named("run")), OnnxRuntimeRunAdvice.class.getName()))
        .installOn(instrumentation);
    System.err.printf("thaw-agent: started%s; sidecar %s; %d model location%s mapped%n",
        attached ? " (attached)" : "", config.sidecar(), config.mappings().size(),
        config.mappings().size() == 1 ? "" : "s");
    if (attached) {
      for (Class<?> c : instrumentation.getAllLoadedClasses()) {
        if (c.getName().equals("ai.onnxruntime.OrtSession")) {
          System.err.println("thaw-agent: attached after ONNX Runtime was in use: the models it loaded before were "
              + "missed (not served through Thaw); later loads are");
          break;
        }
      }
    }
  }

  /** An instrumentation that fails is said in one line; the class loads unchanged. */
  private static final class Problems extends AgentBuilder.Listener.Adapter {
    @Override
    public void onError(String typeName, ClassLoader classLoader, JavaModule module, boolean loaded,
        Throwable throwable) {
      System.err.println("thaw-agent: " + typeName + " is left as it is: " + throwable);
    }

    @Override
    public void onTransformation(TypeDescription type, ClassLoader classLoader, JavaModule module, boolean loaded,
        DynamicType dynamicType) {
      // quiet: the start line said what the agent does
    }
  }
}
