package dev.thaw.agent.internal;

import static net.bytebuddy.matcher.ElementMatchers.isPublic;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.takesArgument;

import java.nio.file.Path;
import net.bytebuddy.ByteBuddy;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.dynamic.ClassFileLocator;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.dynamic.scaffold.TypeValidation;
import net.bytebuddy.matcher.ElementMatcher;
import net.bytebuddy.pool.TypePool;

/**
 * Adds the agent's advice to one library class, from its class file as the JVM is about to define it: the advice's
 * code is inlined into the library's methods (no new members, nothing injected), so a class can also be
 * retransformed. The first class woven loads Byte Buddy; an application that never loads one never does.
 */
final class Weaver {
  private Weaver() {}

  /** Which methods of a class get which advice. */
  record Binding(ElementMatcher<? super MethodDescription> methods, Class<?> advice) {}

  /** What is added to a class. */
  enum Spec {
    SESSION_CREATE(new Binding(isPublic().and(named("createSession")).and(takesArgument(0, String.class)),
        OnnxRuntimeSessionAdvice.class)),
    SESSION_RUN(new Binding(isPublic().and(named("run")), OnnxRuntimeRunAdvice.class)),
    MODEL_PATH_LOAD(new Binding(isPublic().and(named("load")).and(takesArgument(0, Path.class)),
        ModelPathAdvice.class)),
    CRITERIA(new Binding(isPublic().and(named("optModelPath")).and(takesArgument(0, Path.class)),
        ModelPathAdvice.class),
        new Binding(isPublic().and(named("optModelUrls")).and(takesArgument(0, String.class)), ModelUrlAdvice.class));

    final Binding[] bindings;

    Spec(Binding... bindings) {
      this.bindings = bindings;
    }
  }

  private static final ClassFileLocator ADVICE = ClassFileLocator.ForClassLoader.of(Weaver.class.getClassLoader());

  static byte[] weave(String name, byte[] classfile, ClassLoader loader, Spec spec) {
    ClassFileLocator library = new ClassFileLocator.Compound(ClassFileLocator.Simple.of(name, classfile),
        loader == null ? ClassFileLocator.ForClassLoader.ofBootLoader() : ClassFileLocator.ForClassLoader.of(loader));
    TypePool types = TypePool.Default.of(library);
    DynamicType.Builder<?> woven = new ByteBuddy().with(TypeValidation.DISABLED)
        .redefine(types.describe(name).resolve(), library);
    for (Binding b : spec.bindings) {
      woven = woven.visit(Advice.to(b.advice(), ADVICE).on(b.methods()));
    }
    return woven.make(types).getBytes();
  }
}
