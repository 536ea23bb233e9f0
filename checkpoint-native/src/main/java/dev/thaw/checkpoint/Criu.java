package dev.thaw.checkpoint;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Dumps and restores process trees with CRIU's command line.
 *
 * <p>The command line rather than CRIU's RPC ({@code criu swrk} on a socketpair, or {@code criu service} on a
 * {@code SOCK_SEQPACKET} socket): a JVM cannot hand a child process a descriptor beyond stdio, nor open a
 * {@code SOCK_SEQPACKET} socket, without native code, while every option CRIU has is on its command line, each run
 * writes a log we keep with the images, and there is no daemon to keep alive. What RPC adds (notifications between
 * dump steps) is done here by ordering the steps around the call: CUDA is locked and checkpointed before the dump.
 *
 * <p>Images directories are created owner-only: they hold process memory, secrets included.
 */
public final class Criu {
  private static final Pattern VERSION = Pattern.compile("Version:\\s*(\\d+)\\.(\\d+)(?:\\.(\\d+))?");
  private static final int LOG_TAIL_LINES = 12;
  private static final String EXTERNAL_KEY = "thaw-ext-";

  private final Path binary;
  private volatile int[] version;

  Criu(Path binary) {
    this.binary = binary;
  }

  /**
   * Finds a CRIU of at least 4.0: {@code $THAW_CRIU}, then {@code /usr/local/sbin/criu} (where
   * {@code scripts/install-criu.sh} puts one), then the {@code PATH}.
   *
   * @throws CriuException naming the places looked at, and how to install one
   */
  public static Criu locate() throws CriuException {
    List<Path> candidates = new ArrayList<>();
    String env = System.getenv("THAW_CRIU");
    if (env != null && !env.isBlank()) {
      candidates.add(Path.of(env));
    }
    candidates.add(Path.of("/usr/local/sbin/criu"));
    for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (!dir.isEmpty()) {
        candidates.add(Path.of(dir, "criu"));
      }
    }
    candidates.add(Path.of("/usr/sbin/criu"));
    List<String> refused = new ArrayList<>();
    for (Path p : candidates) {
      if (!Files.isExecutable(p)) {
        continue;
      }
      Criu c = new Criu(p);
      try {
        int[] v = c.version();
        if (v[0] >= 4) {
          return c;
        }
        refused.add(p + " is version " + v[0] + "." + v[1]);
      } catch (CriuException e) {
        refused.add(p + ": " + e.getMessage());
      }
    }
    throw new CriuException("no CRIU >= 4.0 found" + (refused.isEmpty() ? "" : " (" + String.join("; ", refused) + ")")
        + "; run scripts/install-criu.sh (as root) to install one");
  }

  public Path binary() {
    return binary;
  }

  /** Major, minor and patch version, from {@code criu --version} (asked once). */
  public int[] version() throws CriuException {
    int[] v = version;
    if (v == null) {
      Result r = run(List.of(binary.toString(), "--version"), 30);
      Matcher m = VERSION.matcher(r.output());
      if (r.exit() != 0 || !m.find()) {
        throw new CriuException(binary + " --version failed (exit " + r.exit() + "): " + r.output().strip());
      }
      v = new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)),
          m.group(3) == null ? 0 : Integer.parseInt(m.group(3))};
      version = v;
    }
    return v.clone();
  }

  /** {@code criu check}: the kernel supports what CRIU needs. */
  public void check() throws CriuException {
    Result r = run(List.of(binary.toString(), "check"), 60);
    if (r.exit() != 0) {
      throw new CriuException("criu check failed (exit " + r.exit() + "): " + r.output().strip());
    }
  }

  /**
   * What a dump or restore must handle besides memory and ordinary files; see CRIU's options of the same names.
   *
   * @param tcpEstablished dump established TCP connections and restore them: only where their peers still are (the
   *     same node), and CRIU keeps the network locked for them from the dump until the restore
   * @param tcpClose instead, dump established connections as closed and restore them closed: the server sees its
   *     clients hang up, and they reconnect; nothing is locked, so the snapshot restores anywhere
   */
  public record Options(boolean tcpEstablished, boolean tcpClose, boolean shellJob, boolean extUnixSockets,
      boolean fileLocks) {
    /** A server restored where it ran, its connections kept; outside unix sockets and file locks too. */
    public static final Options SERVER = new Options(true, false, false, true, true);
    /** A server restored on any node: connections closed; outside unix sockets and file locks kept. */
    public static final Options SERVER_ELSEWHERE = new Options(false, true, false, true, true);

    List<String> flags() {
      List<String> f = new ArrayList<>();
      if (tcpClose) {
        f.add("--tcp-close");
      } else if (tcpEstablished) {
        f.add("--tcp-established");
      }
      if (shellJob) {
        f.add("--shell-job");
      }
      if (extUnixSockets) {
        f.add("--ext-unix-sk");
      }
      if (fileLocks) {
        f.add("--file-locks");
      }
      return f;
    }
  }

  /**
   * Dumps the tree rooted at {@code pid} into {@code images} (created owner-only; it must not hold images already).
   * Unless {@code leaveRunning}, CRIU kills the tree once dumped.
   *
   * @throws CriuException with the tail of {@code images/dump.log}
   */
  public void dump(long pid, Path images, Options options, boolean leaveRunning) throws CriuException {
    images = images.toAbsolutePath(); // CRIU resolves some paths (the pid file) from elsewhere than our directory
    createOwnerOnly(images);
    List<String> cmd = new ArrayList<>(List.of(binary.toString(), "dump", "-t", Long.toString(pid), "-D", images.toString(),
        "-o", "dump.log", "-v4"));
    cmd.addAll(options.flags());
    if (leaveRunning) {
      cmd.add("--leave-running");
    }
    ExternalMounts.dropStaleFuse(pid);
    List<ExternalMounts.ExternalMount> external = ExternalMounts.external(ExternalMounts.of(Long.toString(pid)));
    if (!external.isEmpty()) {
      ExternalMounts.write(images, external);
      for (int i = 0; i < external.size(); i++) {
        cmd.add("--external");
        cmd.add("mnt[" + external.get(i).path() + "]:" + EXTERNAL_KEY + i);
      }
    }
    Result r = run(cmd, 600);
    if (r.exit() != 0) {
      throw new CriuException("criu dump of process " + pid + " into " + images + " failed (exit " + r.exit() + ")"
          + advice(images.resolve("dump.log")) + logTail(images.resolve("dump.log"), r.output()));
    }
  }

  /**
   * Restores the tree dumped in {@code images}, detached: it runs on after this call, no child of this JVM.
   *
   * @return the host PID of the restored tree's root
   * @throws CriuException with the tail of {@code images/restore.log}
   */
  public long restore(Path images, Options options) throws CriuException {
    images = images.toAbsolutePath();
    Path pidFile = images.resolve("restored.pid");
    try {
      Files.deleteIfExists(pidFile);
    } catch (IOException e) {
      throw new CriuException("cannot clear " + pidFile + ": " + e.getMessage(), e);
    }
    // --root /: a tree dumped from its own PID namespace restores into a new one; without a root CRIU 4.1 crashed
    // while restoring its mounts here.
    List<String> cmd = new ArrayList<>(List.of(binary.toString(), "restore", "-D", images.toString(), "-o", "restore.log",
        "-v4", "-d", "--root", "/", "--pidfile", pidFile.toString()));
    cmd.addAll(options.flags());
    List<ExternalMounts.ExternalMount> missing = ExternalMounts.missing(images);
    if (!missing.isEmpty()) {
      throw new CriuException(ExternalMounts.advice(missing.getFirst())
          + (missing.size() > 1 ? " (and " + (missing.size() - 1) + " more: " + missing.subList(1, missing.size()) + ")"
          : ""));
    }
    List<ExternalMounts.ExternalMount> external = ExternalMounts.read(images);
    for (int i = 0; i < external.size(); i++) {
      cmd.add("--external");
      cmd.add("mnt[" + EXTERNAL_KEY + i + "]:" + external.get(i).path());
    }
    Set<Long> namespacesBefore = pidNamespaces();
    long ticksBefore = uptimeTicks();
    Result r;
    try {
      r = run(cmd, 600);
    } catch (CriuException e) {
      List<Long> killed = killLeftovers(namespacesBefore, ticksBefore);
      throw killed.isEmpty() ? e : new CriuException(e.getMessage() + "; killed the half-restored processes " + killed, e);
    }
    if (r.exit() != 0) {
      List<Long> killed = killLeftovers(namespacesBefore, ticksBefore);
      throw new CriuException("criu restore from " + images + " failed (exit " + r.exit() + ")"
          + (killed.isEmpty() ? "" : "; killed the half-restored processes " + killed)
          + logTail(images.resolve("restore.log"), r.output()));
    }
    try {
      return Long.parseLong(Files.readString(pidFile).strip());
    } catch (IOException | NumberFormatException e) {
      throw new CriuException("criu restore from " + images + " wrote no readable " + pidFile + ": " + e.getMessage(), e);
    }
  }

  /**
   * After a restore that failed (CRIU killed, or stopped by an error after creating tasks): kills what it had restored,
   * so nothing is left half-alive. The restored tree is the only thing CRIU puts in a new PID namespace: its root is
   * PID 1 there, started during the restore, and not the child of {@code unshare} (a server that {@code thaw run}
   * started meanwhile). Killing a namespace's PID 1 kills all of it.
   */
  static List<Long> killLeftovers(Set<Long> namespacesBefore, long ticksBefore) {
    List<Long> killed = new ArrayList<>();
    try (var procs = Files.list(Path.of("/proc"))) {
      for (Path p : procs.toList()) {
        String name = p.getFileName().toString();
        if (!name.chars().allMatch(Character::isDigit)) {
          continue;
        }
        try {
          long pid = Long.parseLong(name);
          long ns = pidNamespace(pid);
          if (ns < 0 || namespacesBefore.contains(ns) || !isNamespaceInit(p) || startTicks(p) < ticksBefore
              || "unshare".equals(comm(parentOf(p)))) {
            continue;
          }
          ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
          killed.add(pid);
        } catch (IOException | RuntimeException gone) {
          // exited meanwhile
        }
      }
    } catch (IOException e) {
      // /proc unreadable: nothing more can be found
    }
    for (long pid : killed) {
      PidNamespaceProcess.awaitGone(pid, 10_000);
    }
    return killed;
  }

  /** The PID namespaces processes are in now (inode numbers). */
  static Set<Long> pidNamespaces() {
    Set<Long> out = new HashSet<>();
    try (var procs = Files.list(Path.of("/proc"))) {
      for (Path p : procs.toList()) {
        String name = p.getFileName().toString();
        if (name.chars().allMatch(Character::isDigit)) {
          long ns = pidNamespace(Long.parseLong(name));
          if (ns >= 0) {
            out.add(ns);
          }
        }
      }
    } catch (IOException e) {
      // an empty set only makes the clean-up look at more processes; each is still checked
    }
    return out;
  }

  private static long pidNamespace(long pid) {
    try {
      String link = Files.readSymbolicLink(Path.of("/proc", Long.toString(pid), "ns", "pid")).toString();
      return Long.parseLong(link.substring(link.indexOf('[') + 1, link.indexOf(']')));
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /** Whether the process is PID 1 of its own namespace (the last number of NSpid). */
  private static boolean isNamespaceInit(Path proc) throws IOException {
    for (String line : Files.readAllLines(proc.resolve("status"))) {
      if (line.startsWith("NSpid:")) {
        String[] f = line.substring(6).strip().split("\\s+");
        return f.length > 1 && f[f.length - 1].equals("1");
      }
    }
    return false;
  }

  private static String[] statFields(Path proc) throws IOException {
    String stat = Files.readString(proc.resolve("stat"));
    return stat.substring(stat.lastIndexOf(')') + 2).split(" "); // after the command name, which may hold spaces
  }

  private static long startTicks(Path proc) throws IOException {
    return Long.parseLong(statFields(proc)[19]); // field 22 of stat: start time in clock ticks since boot
  }

  private static Path parentOf(Path proc) throws IOException {
    return Path.of("/proc", statFields(proc)[1]);
  }

  private static String comm(Path proc) {
    try {
      return Files.readString(proc.resolve("comm")).strip();
    } catch (IOException e) {
      return "";
    }
  }

  /** Now, in clock ticks since boot (USER_HZ is 100 on Linux), one tick early so a process started now counts. */
  static long uptimeTicks() {
    try {
      String s = Files.readString(Path.of("/proc/uptime")).split(" ")[0];
      return (long) (Double.parseDouble(s) * 100) - 1;
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  static void createOwnerOnly(Path dir) throws CriuException {
    try {
      if (Files.exists(dir)) {
        try (var entries = Files.list(dir)) {
          if (entries.findAny().isPresent()) {
            throw new CriuException(dir + " is not empty: images are never written over");
          }
        }
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
      } else {
        Files.createDirectories(dir.getParent());
        Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
      }
    } catch (CriuException e) {
      throw e;
    } catch (IOException e) {
      throw new CriuException("cannot create the images directory " + dir + ": " + e.getMessage(), e);
    }
  }

  /**
   * What CRIU's errors mean and what to do, in one line, for the refusals a server on a node meets (a file system it
   * cannot dump, a file on a mount outside the server's namespace); empty when none is recognised.
   */
  static String advice(Path log) {
    List<String> lines;
    try {
      lines = Files.readAllLines(log, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "";
    }
    Pattern fs = Pattern.compile("(?:failed to dump fs|FS mnt) \\.?(/\\S*)(?: \\((\\S+)\\))?");
    Pattern file = Pattern.compile("Can't lookup mount=\\d+ for fd=(\\d+) path=(\\S+)");
    for (String l : lines) {
      if (!l.contains("Error")) {
        continue;
      }
      Matcher m = fs.matcher(l);
      if (m.find()) {
        return ": CRIU cannot dump the mount at " + m.group(1) + (m.group(2) == null ? "" : " (" + m.group(2) + ")")
            + " in the server's namespace: unmount it on the node, or start the server without it";
      }
      m = file.matcher(l);
      if (m.find()) {
        return ": the server holds " + m.group(2) + " (descriptor " + m.group(1) + ") from a mount outside its own"
            + " namespace (a descriptor inherited at start): start it under thaw run, which gives it only its own";
      }
    }
    return "";
  }

  /** The last lines of a CRIU log, errors first, for an exception message. */
  static String logTail(Path log, String output) {
    List<String> lines;
    try {
      lines = Files.readAllLines(log, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return output.isBlank() ? "; no log at " + log : ": " + output.strip();
    }
    List<String> errors = lines.stream().filter(l -> l.contains("Error") || l.contains("error")).toList();
    List<String> tail = lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size());
    StringBuilder s = new StringBuilder("; log ").append(log).append(':');
    for (String e : errors.subList(Math.max(0, errors.size() - 4), errors.size())) {
      s.append("\n  ").append(e.strip());
    }
    s.append("\n  ...");
    for (String t : tail) {
      s.append("\n  ").append(t.strip());
    }
    return s.toString();
  }

  record Result(int exit, String output) {}

  static Result run(List<String> cmd, long timeoutSeconds) throws CriuException {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      // CRIU's own output is small (its log goes to a file); read it aside, so that a CRIU that hangs (it can spin on
      // damaged images) is still killed at the deadline rather than waited for
      java.util.concurrent.CompletableFuture<byte[]> out = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
        try {
          return p.getInputStream().readAllBytes();
        } catch (IOException e) {
          return new byte[0];
        }
      }, r -> Thread.ofVirtual().name("criu-output").start(r));
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        throw new CriuException(String.join(" ", cmd) + " did not finish within " + timeoutSeconds + " s: killed");
      }
      return new Result(p.exitValue(), new String(out.join(), StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new CriuException("cannot run " + cmd.getFirst() + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CriuException("interrupted while running " + String.join(" ", cmd), e);
    }
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "criu at %s", binary);
  }

}
