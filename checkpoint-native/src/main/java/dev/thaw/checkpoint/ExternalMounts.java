package dev.thaw.checkpoint;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The mounts a dumped process tree leaves to the node that restores it. A server started in its own PID namespace
 * ({@link PidNamespaceProcess}) has a private copy of the node's mounts; CRIU dumps and mounts again only some file
 * systems ({@link #DUMPABLE_FS}), so every other mount of that copy (FUSE, a Thaw model mount among them; squashfs, as
 * a GPU node's driver folder; ramfs; NFS; a non-root ext4) is dumped as a reference and bound again at restore from the
 * restoring node's own mount at the same path. Before a dump, FUSE mounts whose daemon is gone from the node (the copy
 * outlived the node's mount) are dropped from the server's namespace, unless the server holds files there. The dump
 * lists what it left external in the images ({@link #FILE}); a restore checks that each is there first.
 */
public final class ExternalMounts {
  /**
   * The file systems CRIU itself dumps and mounts again (criu/filesystems.c, less FUSE, which it always refuses).
   */
  static final Set<String> DUMPABLE_FS = Set.of("proc", "sysfs", "devtmpfs", "binfmt_misc", "tmpfs", "devpts",
      "simfs", "btrfs", "pstore", "mqueue", "securityfs", "fusectl", "debugfs", "tracefs", "cgroup", "cgroup2",
      "aufs", "overlay", "autofs");
  /** The file in an images directory listing the external mounts, one a line: path, type and source, tab-separated. */
  static final String FILE = "external-mounts";
  private static final String THAW_TYPE = "fuse.thaw";
  private static final Pattern DIGEST = Pattern.compile("@(sha256:[0-9a-f]{64})$");

  private ExternalMounts() {}

  /**
   * A mount the dump left external.
   *
   * @param path where it is mounted (the same in the server's namespace and on the node)
   * @param fsType its file system type, as mountinfo gives it ({@code fuse.thaw} for a Thaw mount)
   * @param source its source ({@code thaw:NAME:TAG@sha256:DIGEST} for a Thaw mount)
   */
  public record ExternalMount(String path, String fsType, String source) {
    /** A Thaw mount of a model (a FUSE mount named {@code thaw:SOURCE@DIGEST}). */
    public boolean isThaw() {
      return THAW_TYPE.equals(fsType) && source.startsWith("thaw:");
    }

    /** The model's manifest digest for a Thaw mount, or null. */
    public String thawDigest() {
      Matcher m = DIGEST.matcher(source);
      return isThaw() && m.find() ? m.group(1) : null;
    }

    /** What was mounted: the {@code NAME:TAG}, digest or direct-mode URI a Thaw mount was asked for, or null. */
    public String thawSource() {
      if (!isThaw()) {
        return null;
      }
      Matcher m = DIGEST.matcher(source);
      return m.find() ? source.substring("thaw:".length(), m.start()) : source.substring("thaw:".length());
    }

    @Override
    public String toString() {
      return path + " (" + fsType + " " + source + ")";
    }
  }

  /** One line of a mountinfo file: mount point, the device it is on, type and source. */
  record Mount(String path, String device, String fsType, String source) {
    boolean isFuse() {
      return fsType.equals("fuse") || fsType.startsWith("fuse.");
    }
  }

  /** The mounts of {@code pid}'s namespace ({@code self}: this process's), or none when it cannot be read. */
  static List<Mount> of(String pid) {
    try {
      return parse(Files.readAllLines(Path.of("/proc", pid, "mountinfo"), StandardCharsets.UTF_8));
    } catch (IOException e) {
      return List.of(); // no such process: CRIU's dump says so, naming it
    }
  }

  static List<Mount> parse(List<String> mountinfo) {
    List<Mount> out = new ArrayList<>();
    for (String line : mountinfo) {
      String[] f = line.split(" ");
      int dash = List.of(f).indexOf("-");
      if (f.length < 5 || dash < 0 || dash + 2 >= f.length) {
        continue;
      }
      out.add(new Mount(unescape(f[4]), f[2], f[dash + 1], unescape(f[dash + 2])));
    }
    return out;
  }

  /**
   * The mounts of a namespace that CRIU cannot dump, in mountinfo's order, each once; never the root, which CRIU
   * restores under {@code --root /}.
   */
  static List<ExternalMount> external(List<Mount> mounts) {
    List<ExternalMount> out = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    for (Mount m : mounts) {
      if (!m.path().equals("/") && !DUMPABLE_FS.contains(m.fsType()) && seen.add(m.path())) {
        out.add(new ExternalMount(m.path(), m.fsType(), m.source()));
      }
    }
    return out;
  }

  /**
   * Drops from {@code pid}'s mount namespace the FUSE mounts the node no longer has (its copy of a mount the node has
   * since unmounted: the same path on the same device is gone from this process's mountinfo), which CRIU could neither
   * dump nor bind again. A server holding files there (open, mapped, or its working directory) cannot be dumped: that
   * is an error naming the mount.
   *
   * @return the mount points dropped
   */
  static List<String> dropStaleFuse(long pid) throws CriuException {
    List<Mount> node = of("self");
    List<String> dropped = new ArrayList<>();
    for (Mount m : of(Long.toString(pid))) {
      if (!m.isFuse() || node.stream().anyMatch(n -> n.path().equals(m.path()) && n.device().equals(m.device()))) {
        continue;
      }
      String holder = holderUnder(pid, m.path());
      if (holder != null) {
        throw new CriuException("the server holds " + holder + " on " + m.path() + " (" + m.fsType() + " "
            + m.source() + "), a FUSE mount whose daemon is gone from this node: start the server again on a live"
            + " mount, then checkpoint it");
      }
      // --no-canonicalize: the mount's daemon is gone, so resolving its path would fail (ENOENT, ENOTCONN)
      String out;
      int status;
      try {
        Process p = new ProcessBuilder("nsenter", "--target", Long.toString(pid), "--mount", "--", "umount", "--lazy",
            "--no-canonicalize", m.path()).redirectErrorStream(true).start();
        out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          out = "did not finish within 30 s";
        }
        status = p.isAlive() ? -1 : p.exitValue();
      } catch (IOException e) {
        throw new CriuException("cannot run nsenter (util-linux) to drop the stale FUSE mount " + m.path() + ": "
            + e.getMessage(), e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new CriuException("interrupted while dropping " + m.path(), e);
      }
      if (status != 0) {
        // left in place: CRIU dumps it as an external mount like any other, bound again from the node's directory
        System.getLogger(ExternalMounts.class.getName()).log(System.Logger.Level.WARNING, "event=stale_mount_kept path="
            + m.path() + " pid=" + pid + " cause=\"" + out + "\"");
        continue;
      }
      dropped.add(m.path());
    }
    return dropped;
  }

  /**
   * The first file of {@code pid}'s tree under {@code dir} (an open descriptor, a mapped file, a working or root
   * directory), or null.
   */
  static String holderUnder(long pid, String dir) {
    String prefix = dir.endsWith("/") ? dir : dir + "/";
    for (long task : tree(pid)) {
      Path proc = Path.of("/proc", Long.toString(task));
      List<String> paths = new ArrayList<>();
      for (String link : List.of("cwd", "root")) {
        try {
          paths.add(Files.readSymbolicLink(proc.resolve(link)).toString());
        } catch (IOException | UnsupportedOperationException e) {
          // gone, or not ours to read
        }
      }
      try (var fds = Files.list(proc.resolve("fd"))) {
        for (Path fd : fds.toList()) {
          try {
            paths.add(Files.readSymbolicLink(fd).toString());
          } catch (IOException e) {
            // closed meanwhile
          }
        }
      } catch (IOException e) {
        // gone
      }
      try {
        for (String line : Files.readAllLines(proc.resolve("maps"), StandardCharsets.UTF_8)) {
          int slash = line.indexOf('/');
          if (slash > 0) {
            paths.add(line.substring(slash));
          }
        }
      } catch (IOException e) {
        // gone
      }
      for (String p : paths) {
        String clean = p.endsWith(" (deleted)") ? p.substring(0, p.length() - 10) : p;
        if (clean.equals(dir) || clean.startsWith(prefix)) {
          return clean;
        }
      }
    }
    return null;
  }

  /** {@code pid} and every process below it. */
  private static List<Long> tree(long pid) {
    List<Long> out = new ArrayList<>();
    List<Long> todo = new ArrayList<>(List.of(pid));
    while (!todo.isEmpty()) {
      long p = todo.removeLast();
      out.add(p);
      try (var tasks = Files.list(Path.of("/proc", Long.toString(p), "task"))) {
        for (Path t : tasks.toList()) {
          String children = Files.readString(t.resolve("children")).strip();
          if (!children.isEmpty()) {
            for (String c : children.split(" ")) {
              todo.add(Long.parseLong(c));
            }
          }
        }
      } catch (IOException | RuntimeException e) {
        // exited meanwhile
      }
    }
    return out;
  }

  static void write(Path images, List<ExternalMount> mounts) throws CriuException {
    List<String> lines = new ArrayList<>();
    for (ExternalMount m : mounts) {
      for (String field : List.of(m.path(), m.fsType(), m.source())) {
        if (field.contains("\t") || field.contains("\n")) {
          throw new CriuException("cannot dump the mount " + m + ": a tab or newline in its path, type or source");
        }
      }
      lines.add(m.path() + "\t" + m.fsType() + "\t" + m.source());
    }
    try {
      Files.write(images.resolve(FILE), lines, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new CriuException("cannot write " + images.resolve(FILE) + ": " + e.getMessage(), e);
    }
  }

  /**
   * The mounts the dump of {@code images} left external, in key order; none for images without the list. Each path
   * must be a plain absolute path (images from elsewhere name nothing else to bind into the restored tree).
   */
  public static List<ExternalMount> read(Path images) throws CriuException {
    Path file = images.resolve(FILE);
    if (!Files.exists(file)) {
      return List.of();
    }
    try {
      List<ExternalMount> out = new ArrayList<>();
      for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
        String[] f = line.split("\t", -1);
        String mp = f[0];
        Path p = Path.of(mp);
        if (!p.isAbsolute() || !p.normalize().equals(p) || mp.contains("]") || mp.contains("..")) {
          throw new CriuException(file + " names '" + mp + "', which is not a plain absolute mount point");
        }
        out.add(new ExternalMount(mp, f.length > 1 ? f[1] : "", f.length > 2 ? f[2] : ""));
      }
      return out;
    } catch (IOException | InvalidPathException e) {
      throw new CriuException("cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  /**
   * The external mounts of {@code images} this node does not have yet: a Thaw mount of the same model (digest) at the
   * same path, or for any other, a directory there to bind.
   */
  public static List<ExternalMount> missing(Path images) throws CriuException {
    List<ExternalMount> out = new ArrayList<>();
    for (ExternalMount m : read(images)) {
      if (missing(m)) {
        out.add(m);
      }
    }
    return out;
  }

  /** Whether this node lacks {@code m}: as {@link #missing(Path)} for one mount. */
  public static boolean missing(ExternalMount m) {
    List<Mount> node = of("self");
    return m.isThaw() ? node.stream().noneMatch(n -> n.path().equals(m.path()) && THAW_TYPE.equals(n.fsType())
        && m.thawDigest() != null && n.source().endsWith("@" + m.thawDigest()))
        : !Files.isDirectory(Path.of(m.path()));
  }

  /** What to do about a mount {@link #missing} names, in words. */
  static String advice(ExternalMount m) {
    if (m.isThaw()) {
      String what = m.thawDigest() != null ? m.thawDigest() : m.thawSource();
      return "the server read its model through a Thaw mount of " + what + " at " + m.path()
          + ", and this node has no mount of it there: mount it (thaw mount " + what + " " + m.path()
          + " --origin ORIGIN), then restore again";
    }
    return "the server had " + m + " in its mounts, and this node has no directory at " + m.path()
        + ": create or mount it, then restore again";
  }

  /** mountinfo writes space, tab, newline and backslash in paths as octal escapes ({@code \040}). */
  private static String unescape(String s) {
    Matcher m = Pattern.compile("\\\\([0-7]{3})").matcher(s);
    StringBuilder b = new StringBuilder();
    while (m.find()) {
      m.appendReplacement(b, Matcher.quoteReplacement(String.valueOf((char) Integer.parseInt(m.group(1), 8))));
    }
    return m.appendTail(b).toString();
  }
}
