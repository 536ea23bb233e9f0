package dev.thaw.agent.apps;

/** An application that uses none of the libraries the agent knows. */
public final class HelloApp {
  private HelloApp() {}

  public static void main(String[] args) {
    System.out.println("hello from the application");
  }
}
