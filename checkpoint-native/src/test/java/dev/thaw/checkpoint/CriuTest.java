package dev.thaw.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * CRIU for real: a JVM serving HTTP, started as PID 1 of its own PID namespace, is dumped (killed), restored, and
 * answers on the connection it had open before the dump with the counter value it had in memory.
 */
class CriuTest {
  static Criu criu;
  @TempDir Path tmp;

  @BeforeAll
  static void criuIsInstalled() throws Exception {
    criu = Criu.locate(); // scripts/test installs one (scripts/install-criu.sh)
    criu.check();
  }

  @Test
  void aServerInItsOwnPidNamespaceIsDumpedAndRestoredWithItsMemoryAndOpenConnection() throws Exception {
    int port = freePort();
    long restored = -1;
    try (PidNamespaceProcess server = startCounterServer(port)) {
      awaitListening(port);
      assertThat(get(port)).isEqualTo("1");
      try (Socket kept = new Socket("127.0.0.1", port)) {
        assertThat(getOn(kept)).isEqualTo("2");

        Path images = tmp.resolve("images");
        criu.dump(server.pid(), images, Criu.Options.SERVER, false);
        assertThat(PidNamespaceProcess.awaitGone(server.pid(), 10_000)).as("dump kills the tree").isTrue();
        assertThat(Files.getPosixFilePermissions(images)).isEqualTo(PosixFilePermissions.fromString("rwx------"));

        restored = criu.restore(images, Criu.Options.SERVER);
        assertThat(Files.exists(Path.of("/proc", Long.toString(restored)))).isTrue();
        assertThat(getOn(kept)).as("the connection open at the dump answers, counting on from memory").isEqualTo("3");
      }
      assertThat(get(port)).isEqualTo("4");
    } finally {
      if (restored > 0) {
        long pid = restored;
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        PidNamespaceProcess.awaitGone(pid, 10_000);
      }
    }
  }

  @Test
  void withLeaveRunningTheServerKeepsServingWhileItIsDumped() throws Exception {
    int port = freePort();
    try (PidNamespaceProcess server = startCounterServer(port)) {
      awaitListening(port);
      assertThat(get(port)).isEqualTo("1");
      criu.dump(server.pid(), tmp.resolve("images"), Criu.Options.SERVER, true);
      assertThat(server.isAlive()).isTrue();
      assertThat(get(port)).isEqualTo("2");
    }
  }

  @Test
  void aFailedRestoreSaysWhyWithTheTailOfCriusLog() throws Exception {
    Path empty = Files.createDirectories(tmp.resolve("no-images"));
    assertThatThrownBy(() -> criu.restore(empty, Criu.Options.SERVER))
        .isInstanceOf(CriuException.class)
        .hasMessageContaining("criu restore from " + empty + " failed")
        .hasMessageContaining("restore.log");
  }

  @Test
  void aMountCriuCannotDumpIsLeftExternalAndBoundAgainOnRestore() throws Exception {
    // ramfs, like FUSE (a Thaw mount) or squashfs (a GPU node's driver folder), is a filesystem CRIU refuses to dump;
    // the server's private copy of the node's mounts holds it
    Path mount = Files.createDirectories(tmp.resolve("ramfs"));
    run("mount", "-t", "ramfs", "thaw-test", mount.toString());
    int port = freePort();
    long restored = -1;
    try (PidNamespaceProcess server = startCounterServer(port)) {
      awaitListening(port);
      assertThat(get(port)).isEqualTo("1");
      Path images = tmp.resolve("images");
      criu.dump(server.pid(), images, Criu.Options.SERVER_ELSEWHERE, false);
      assertThat(ExternalMounts.read(images)).extracting(ExternalMounts.ExternalMount::path).contains(mount.toString());
      PidNamespaceProcess.awaitGone(server.pid(), 10_000);

      restored = criu.restore(images, Criu.Options.SERVER_ELSEWHERE);
      assertThat(get(port)).as("counting on from memory").isEqualTo("2");
      assertThat(Files.readString(Path.of("/proc", Long.toString(restored), "mountinfo")))
          .as("the node's mount is bound at the same place").contains(" " + mount + " ");
    } finally {
      if (restored > 0) {
        long pid = restored;
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        PidNamespaceProcess.awaitGone(pid, 10_000);
      }
      run("umount", "-l", mount.toString());
    }
  }

  @Test
  void aCriuThatHangsIsKilledAtItsDeadline() {
    long t0 = System.nanoTime();
    assertThatThrownBy(() -> Criu.run(List.of("sh", "-c", "echo started; exec sleep 60"), 1))
        .isInstanceOf(CriuException.class).hasMessageContaining("did not finish within 1 s");
    assertThat((System.nanoTime() - t0) / 1e9).as("seconds until it was given up").isLessThan(20);
  }

  @Test
  void onlyFilesystemsCriuCannotDumpAreExternalNeverTheRoot() {
    List<String> mountinfo = List.of(
        "37 1 253:1 / / rw,relatime - ext4 /dev/vda rw",
        "39 37 254:16 / /usr/local/nvidia ro,relatime - squashfs /dev/vdb ro,errors=continue",
        "40 37 0:5 / /proc rw,nosuid - proc proc rw",
        "41 37 0:40 / /srv/models/my\\040model rw - fuse.thaw thaw rw,user_id=0",
        "42 37 0:41 / /dev/shm rw - tmpfs tmpfs rw",
        "43 37 253:2 / /data rw - ext4 /dev/vdc rw");
    assertThat(ExternalMounts.external(ExternalMounts.parse(mountinfo)).stream().map(ExternalMounts.ExternalMount::path))
        .containsExactly("/usr/local/nvidia", "/srv/models/my model", "/data");
  }

  @Test
  void aThawMountIsKnownByTheModelItServes() {
    List<String> mountinfo = List.of(
        "37 1 253:1 / / rw,relatime - ext4 /dev/vda rw",
        "45 37 0:52 / /srv/models/llama rw,nosuid,nodev - fuse.thaw thaw:llama/8b:v1@sha256:" + "ab".repeat(32)
            + " rw,user_id=0,group_id=0,default_permissions");
    ExternalMounts.ExternalMount m = ExternalMounts.external(ExternalMounts.parse(mountinfo)).getFirst();
    assertThat(m.isThaw()).isTrue();
    assertThat(m.thawDigest()).isEqualTo("sha256:" + "ab".repeat(32));
    assertThat(m.thawSource()).isEqualTo("llama/8b:v1");
    assertThat(ExternalMounts.advice(m)).contains("thaw mount sha256:" + "ab".repeat(32) + " /srv/models/llama");
  }

  @Test
  void aRestoreWhoseExternalMountIsNotOnThisNodeSaysWhichAndWhatToDoBeforeCriuRuns() throws Exception {
    Path images = Files.createDirectories(tmp.resolve("needs-a-mount"));
    Files.writeString(images.resolve(ExternalMounts.FILE), "/srv/thaw-test-nowhere\tfuse.thaw\tthaw:m:v1@sha256:"
        + "cd".repeat(32) + "\n");
    assertThatThrownBy(() -> criu.restore(images, Criu.Options.SERVER_ELSEWHERE))
        .isInstanceOf(CriuException.class)
        .hasMessageContaining("/srv/thaw-test-nowhere").hasMessageContaining("thaw mount sha256:" + "cd".repeat(32));
    assertThat(images.resolve("restore.log")).as("CRIU never ran").doesNotExist();
  }

  @Test
  void imagesNamingAnythingButPlainMountPointsAreRefused() throws Exception {
    Path images = Files.createDirectories(tmp.resolve("hostile"));
    Files.writeString(images.resolve(ExternalMounts.FILE), "/usr/local/nvidia\tsquashfs\t/dev/vdb\n../../etc\tramfs\tx\n");
    assertThatThrownBy(() -> ExternalMounts.read(images))
        .isInstanceOf(CriuException.class).hasMessageContaining("'../../etc'");
  }

  private static void run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0).as(String.join(" ", cmd) + ": " + out).isTrue();
  }

  @Test
  void imagesAreNeverWrittenOverAndADeadProcessIsReported() throws Exception {
    Path images = Files.createDirectories(tmp.resolve("images"));
    Files.writeString(images.resolve("inventory.img"), "x");
    assertThatThrownBy(() -> criu.dump(1, images, Criu.Options.SERVER, true))
        .isInstanceOf(CriuException.class).hasMessageContaining("is not empty");
    long gone = deadPid();
    assertThatThrownBy(() -> criu.dump(gone, tmp.resolve("other"), Criu.Options.SERVER, true))
        .isInstanceOf(CriuException.class)
        .hasMessageContaining("criu dump of process " + gone)
        .hasMessageContaining("dump.log");
  }

  private PidNamespaceProcess startCounterServer(int port) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    // -XX:-UsePerfData: every JVM that is PID 1 of its namespace would write /tmp/hsperfdata_<user>/1
    return PidNamespaceProcess.start(List.of(java, "-XX:-UsePerfData", "-Xmx64m", "-XX:+UseSerialGC", "-cp",
        System.getProperty("java.class.path"), CounterServer.class.getName(), Integer.toString(port)),
        tmp.resolve("server.out"), tmp.resolve("server.err"));
  }

  private static long deadPid() throws Exception {
    Process p = new ProcessBuilder("true").start();
    p.waitFor(10, TimeUnit.SECONDS);
    return p.pid();
  }


  private static int freePort() throws IOException {
    return TestServers.freePorts(1)[0];
  }

  private static void awaitListening(int port) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (System.nanoTime() < deadline) {
      try {
        new Socket("127.0.0.1", port).close();
        return;
      } catch (IOException notYet) {
        LockSupport.parkNanos(20_000_000);
      }
    }
    throw new AssertionError("the counter server did not listen on " + port + " within 30 s");
  }

  private static String get(int port) throws IOException {
    try (Socket s = new Socket("127.0.0.1", port)) {
      return getOn(s);
    }
  }

  /** One HTTP/1.1 GET on an open connection, which stays open; returns the body. */
  private static String getOn(Socket s) throws IOException {
    s.setSoTimeout(30_000);
    OutputStream out = s.getOutputStream();
    out.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
    out.flush();
    BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
    int length = -1;
    String line;
    while ((line = in.readLine()) != null && !line.isEmpty()) {
      if (line.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
        length = Integer.parseInt(line.substring(15).strip());
      }
    }
    char[] body = new char[length];
    int n = 0;
    while (n < length) {
      int r = in.read(body, n, length - n);
      if (r < 0) {
        break;
      }
      n += r;
    }
    return new String(body, 0, n);
  }
}
