package dev.thaw.agent.apps;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * A server that loads one model at start ({@code args[0]}), then, for each path it reads from stdin, loads that
 * model and answers one inference as {@link OrtApp} does: what {@code thaw attach} finds running.
 */
public final class WaitingOrtApp {
  private WaitingOrtApp() {}

  public static void main(String[] args) throws Exception {
    OrtApp.main(new String[] {args[0], args[1]});
    System.out.println("waiting");
    System.out.flush();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String path = in.readLine(); path != null; path = in.readLine()) {
      OrtApp.main(new String[] {path, args[1]});
      System.out.flush();
    }
  }
}
