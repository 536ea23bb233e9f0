package dev.thaw.bench;

/** A JVM's {@code main} that only says when it was reached: what {@code thaw bench agent}'s start cost times. */
public final class StartProbe {
  private StartProbe() {}

  public static void main(String[] args) {
    System.out.println(System.currentTimeMillis());
  }
}
