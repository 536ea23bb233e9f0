package dev.thaw.agent.internal;

import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import java.util.Map;

/**
 * Watches the classes the JVM loads for the few that load and run models ({@link #LIBRARIES}), by name alone: for
 * any other class it returns at once, and Byte Buddy is not even loaded until one of them comes ({@link Weaver}). An
 * application without these libraries pays one map lookup per class it loads.
 */
final class LibraryTransformer implements ClassFileTransformer {
  /** The classes instrumented, by internal name, and what is added to them. */
  static final Map<String, String> LIBRARIES = Map.of( // names of Weaver.Spec: Byte Buddy stays unloaded till needed
      // ONNX Runtime: OrtEnvironment.createSession(String modelPath[, SessionOptions]) and OrtSession.run(...)
      "ai/onnxruntime/OrtEnvironment", "SESSION_CREATE",
      "ai/onnxruntime/OrtSession", "SESSION_RUN",
      // DJL: Criteria.builder().optModelPath(Path) / optModelUrls(String), and its engines' Model.load(Path, ...)
      "ai/djl/repository/zoo/Criteria$Builder", "CRITERIA",
      "ai/djl/onnxruntime/engine/OrtModel", "MODEL_PATH_LOAD",
      "ai/djl/pytorch/engine/PtModel", "MODEL_PATH_LOAD");

  @Override
  public byte[] transform(ClassLoader loader, String className, Class<?> redefined, ProtectionDomain domain,
      byte[] classfile) {
    String spec = className == null ? null : LIBRARIES.get(className);
    if (spec == null) {
      return null;
    }
    try {
      return Weaver.weave(className.replace('/', '.'), classfile, loader, Weaver.Spec.valueOf(spec));
    } catch (Throwable t) {
      System.err.println("thaw-agent: " + className.replace('/', '.') + " is left as it is: " + t);
      return null;
    }
  }

  /** For an agent loaded into a running JVM: applies itself to the library classes already loaded. */
  static boolean retransformLoaded(Instrumentation instrumentation) {
    boolean found = false;
    for (Class<?> c : instrumentation.getAllLoadedClasses()) {
      if (LIBRARIES.containsKey(c.getName().replace('.', '/')) && instrumentation.isModifiableClass(c)) {
        found = true;
        try {
          instrumentation.retransformClasses(c);
        } catch (Exception | LinkageError e) {
          System.err.println("thaw-agent: " + c.getName() + " is left as it is: " + e);
        }
      }
    }
    return found;
  }
}
