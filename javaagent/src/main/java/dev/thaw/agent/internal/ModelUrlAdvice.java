package dev.thaw.agent.internal;

import dev.thaw.agent.bootstrap.ModelLoadHooks;
import net.bytebuddy.asm.Advice;

/**
 * Added to DJL's {@code Criteria.Builder.optModelUrls(String)}: a {@code file:} URL under a mapped prefix, or a
 * {@code thaw://NAME:TAG/path} URL, becomes the {@code file:} URL of the mount's path.
 */
final class ModelUrlAdvice {
  private ModelUrlAdvice() {}

  @Advice.OnMethodEnter
  static void enter(@Advice.Argument(value = 0, readOnly = false) String urls) {
    urls = ModelLoadHooks.modelUrl(urls);
  }
}
