package dev.thaw.agent.internal;

import static net.bytebuddy.matcher.ElementMatchers.isPublic;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.takesArgument;

import net.bytebuddy.ByteBuddy;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.dynamic.ClassFileLocator;
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

  /** What is added to a class: which methods get which advice. */
  enum Spec {
    SESSION_CREATE(isPublic().and(named("createSession")).and(takesArgument(0, String.class)),
        OnnxRuntimeSessionAdvice.class),
    SESSION_RUN(isPublic().and(named("run")), OnnxRuntimeRunAdvice.class);

    final ElementMatcher<? super MethodDescription> methods;
    final Class<?> advice;

    Spec(ElementMatcher<? super MethodDescription> methods, Class<?> advice) {
      this.methods = methods;
      this.advice = advice;
    }
  }

  private static final ClassFileLocator ADVICE = ClassFileLocator.ForClassLoader.of(Weaver.class.getClassLoader());

  static byte[] weave(String name, byte[] classfile, ClassLoader loader, Spec spec) {
    ClassFileLocator library = new ClassFileLocator.Compound(ClassFileLocator.Simple.of(name, classfile),
        loader == null ? ClassFileLocator.ForClassLoader.ofBootLoader() : ClassFileLocator.ForClassLoader.of(loader));
    TypePool types = TypePool.Default.of(library);
    return new ByteBuddy().with(TypeValidation.DISABLED)
        .redefine(types.describe(name).resolve(), library)
        .visit(Advice.to(spec.advice, ADVICE).on(spec.methods))
        .make(types)
        .getBytes();
  }
}
