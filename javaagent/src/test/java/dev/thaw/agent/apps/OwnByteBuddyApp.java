package dev.thaw.agent.apps;

import net.bytebuddy.ByteBuddy;
import net.bytebuddy.implementation.FixedValue;
import net.bytebuddy.matcher.ElementMatchers;

/** An application with a Byte Buddy of its own (the one on its class path), which it uses as usual. */
public final class OwnByteBuddyApp {
  private OwnByteBuddyApp() {}

  public static void main(String[] args) throws Exception {
    Class<?> made = new ByteBuddy().subclass(Object.class).method(ElementMatchers.named("toString"))
        .intercept(FixedValue.value("made by the application's Byte Buddy")).make()
        .load(OwnByteBuddyApp.class.getClassLoader()).getLoaded();
    System.out.println(made.getDeclaredConstructor().newInstance());
    System.out.println("Byte Buddy from " + ByteBuddy.class.getProtectionDomain().getCodeSource().getLocation());
  }
}
