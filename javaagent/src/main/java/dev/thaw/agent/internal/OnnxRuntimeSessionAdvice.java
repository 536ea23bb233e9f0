package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import net.bytebuddy.asm.Advice;

/**
 * Added to ONNX Runtime's {@code OrtEnvironment.createSession(String, ...)}: the model's path is the mount's when Thaw
 * serves it. Inlined into ONNX Runtime's class, so it names only the hooks on the boot class path.
 */
final class OnnxRuntimeSessionAdvice {
  private OnnxRuntimeSessionAdvice() {}

  @Advice.OnMethodEnter
  static void enter(@Advice.Argument(value = 0, readOnly = false) String modelPath) {
    modelPath = ModelLoadHooks.modelPath(modelPath);
  }

  @Advice.OnMethodExit(onThrowable = Throwable.class)
  static void exit(@Advice.Argument(0) String modelPath, @Advice.Return Object session,
      @Advice.Thrown Throwable thrown) {
    if (thrown == null) {
      ModelLoadHooks.loaded(modelPath, session);
    } else {
      ModelLoadHooks.failed(modelPath, thrown);
    }
  }
}
