package dev.thaw.testkit;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Finds the programs the benches and tests drive, installing the Debian packages that provide them when missing. */
public final class Tools {
  private Tools() {}

  public static String require(String program, String aptPackage, PrintStream log) throws IOException {
    String found = which(program);
    if (found != null) {
      return found;
    }
    log.printf("%s not found: installing the Debian package %s with apt-get%n", program, aptPackage);
    try {
      // Another apt-get (unattended-upgrades on a fresh machine) may hold the lock for minutes: wait, and say so.
      // DPkg::Lock::Timeout covers only dpkg's lock, not the lists' lock `apt-get update` takes, hence the loop.
      ProcessBuilder pb = new ProcessBuilder("sh", "-c", """
          i=0
          until out=$(apt-get update -qq 2>&1) || ! echo "$out" | grep -q 'Could not get lock'; do
            [ "$i" -gt 0 ] || echo "waiting up to 10 minutes for the package manager's lock: $(echo "$out" | head -n 1)"
            i=$((i + 1)); [ "$i" -lt 600 ] || break; sleep 1
          done
          apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$0" >/dev/null
          """, aptPackage);
      pb.environment().put("DEBIAN_FRONTEND", "noninteractive");
      Process p = pb.redirectErrorStream(true).start();
      try (var out = p.getInputStream()) {
        out.transferTo(log);
      }
      if (!p.waitFor(1200, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new IOException("apt-get install " + aptPackage + " failed; install it by hand (as root)");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while installing " + aptPackage, e);
    }
    found = which(program);
    if (found == null) {
      throw new IOException(program + " is still missing after installing " + aptPackage);
    }
    return found;
  }

  public static String which(String program) {
    String path = System.getenv().getOrDefault("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin";
    for (String dir : path.split(":")) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
        return Path.of(dir, program).toString();
      }
    }
    return null;
  }

  /** Runs a command to completion, failing with its output when it exits non-zero. */
  public static String run(List<String> cmd, long timeoutSeconds) throws IOException {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      byte[] out = p.getInputStream().readAllBytes();
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException(String.join(" ", cmd) + " timed out");
      }
      String s = new String(out);
      if (p.exitValue() != 0) {
        throw new IOException(String.join(" ", cmd) + " exited " + p.exitValue() + ": " + s.trim());
      }
      return s;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted: " + String.join(" ", cmd), e);
    }
  }
}
