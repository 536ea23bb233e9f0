package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import java.nio.file.Path;
import net.bytebuddy.asm.Advice;

/**
 * Added to a method whose first argument is a model's path ({@code java.nio.file.Path}): DJL's
 * {@code Criteria.Builder.optModelPath(Path)} and its engines' {@code Model.load(Path, ...)}. The path is the mount's
 * when Thaw serves it. Inlined into the library's class, so it names only the hooks.
 */
final class ModelPathAdvice {
  private ModelPathAdvice() {}

  @Advice.OnMethodEnter
  static void enter(@Advice.Argument(value = 0, readOnly = false) Path modelPath) {
    modelPath = ModelLoadHooks.modelPath(modelPath);
  }
}
