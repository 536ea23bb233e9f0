package dev.thaw.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Runs the thaw command line in this JVM, keeping what the last run printed on stdout and stderr. Public for the
 * tests of the commands that the bench module adds (this module's test-jar).
 */
public final class ThawRun {
  private ByteArrayOutputStream out = new ByteArrayOutputStream();
  private ByteArrayOutputStream err = new ByteArrayOutputStream();

  /** Runs {@code thaw ARGS...}; returns its exit status. */
  public int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    PrintStream realOut = System.out;
    PrintStream realErr = System.err;
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    try {
      return Main.run(args);
    } finally {
      System.setOut(realOut);
      System.setErr(realErr);
    }
  }

  public String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  public String err() {
    return err.toString(StandardCharsets.UTF_8);
  }
}
