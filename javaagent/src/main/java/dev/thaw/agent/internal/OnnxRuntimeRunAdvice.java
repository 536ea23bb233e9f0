package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import net.bytebuddy.asm.Advice;

/**
 * Added to ONNX Runtime's {@code OrtSession.run(...)}: a session's inference answered, for its model's first one.
 * Inlined into ONNX Runtime's class; one volatile read once every model has answered.
 */
final class OnnxRuntimeRunAdvice {
  private OnnxRuntimeRunAdvice() {}

  @Advice.OnMethodExit(onThrowable = Throwable.class)
  static void exit(@Advice.This Object session, @Advice.Thrown Throwable thrown) {
    if (thrown == null) {
      ModelLoadHooks.inferred(session);
    }
  }
}
