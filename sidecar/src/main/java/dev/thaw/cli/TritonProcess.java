package dev.thaw.cli;

import dev.thaw.checkpoint.PidNamespaceProcess;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

/**
 * Triton run so that it can be checkpointed, as the wrapper's {@link Process}: booted as PID 1 of a PID namespace of its
 * own ({@link PidNamespaceProcess}), or restored by CRIU (this JVM, the reaper of orphans below it, collects its exit
 * status). Either way its stdout and stderr are files (which CRIU reopens on restore), copied as they grow to the
 * wrapper's stdout and stderr; {@link #destroy} sends SIGTERM, and {@link #waitFor} returns Triton's exit status once
 * its last output has been copied.
 */
final class TritonProcess extends Process {
  private final long pid;
  private final CompletableFuture<Integer> exit = new CompletableFuture<>();
  private final Runnable kill;

  private TritonProcess(long pid, Runnable kill) {
    this.pid = pid;
    this.kill = kill;
  }

  /** Starts {@code command} in a new PID namespace, its output appended to {@code stdout} and {@code stderr}. */
  static TritonProcess boot(List<String> command, Path stdout, Path stderr) throws IOException {
    Tail out = Tail.start(stdout, System.out);
    Tail err = Tail.start(stderr, System.err);
    PidNamespaceProcess p;
    try {
      p = PidNamespaceProcess.start(command, stdout, stderr);
    } catch (IOException | RuntimeException e) {
      out.stop();
      err.stop();
      throw e;
    }
    TritonProcess t = new TritonProcess(p.pid(), p::close);
    t.follow(() -> p.waitFor(), out, err);
    return t;
  }

  /**
   * Follows the restored server {@code pid}, a child of this JVM (see {@link ChildReaper}), whose output goes to
   * {@code stdout} and {@code stderr}.
   */
  static TritonProcess restored(long pid, Path stdout, Path stderr) {
    Tail out = Tail.start(stdout, System.out);
    Tail err = Tail.start(stderr, System.err);
    TritonProcess t = new TritonProcess(pid, () -> {
      ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    });
    t.follow(() -> {
      try {
        return ChildReaper.waitFor(pid);
      } catch (IOException notOurs) {
        // not reparented here: only its going can be seen
        while (PidNamespaceProcess.exists(pid)) {
          Thread.sleep(200);
        }
        System.err.println("thaw triton: the restored Triton (process " + pid + ") has ended; its exit status could "
            + "not be collected (" + notOurs.getMessage() + "), so thaw's is 1");
        return 1; // not known to have succeeded
      }
    }, out, err);
    return t;
  }

  private interface Waiter {
    int await() throws Exception;
  }

  private void follow(Waiter waiter, Tail out, Tail err) {
    Thread.ofPlatform().daemon().name("thaw-triton-exit").start(() -> {
      int status;
      try {
        status = waiter.await();
      } catch (Exception e) {
        status = 1;
      }
      out.stop(); // its last words first, then its status
      err.stop();
      exit.complete(status);
    });
  }

  @Override
  public long pid() {
    return pid;
  }

  @Override
  public int waitFor() throws InterruptedException {
    try {
      return exit.get();
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  @Override
  public boolean waitFor(long timeout, TimeUnit unit) throws InterruptedException {
    try {
      exit.get(timeout, unit);
      return true;
    } catch (TimeoutException e) {
      return false;
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  @Override
  public int exitValue() {
    Integer v = exit.getNow(null);
    if (v == null) {
      throw new IllegalThreadStateException("Triton (process " + pid + ") has not exited");
    }
    return v;
  }

  @Override
  public boolean isAlive() {
    return !exit.isDone();
  }

  /** SIGTERM: Triton unloads its models and exits. */
  @Override
  public void destroy() {
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
  }

  /** Kills Triton's whole namespace. */
  @Override
  public Process destroyForcibly() {
    kill.run();
    return this;
  }

  @Override
  public OutputStream getOutputStream() {
    return OutputStream.nullOutputStream(); // stdin is /dev/null
  }

  @Override
  public InputStream getInputStream() {
    return InputStream.nullInputStream(); // copied to the wrapper's stdout
  }

  @Override
  public InputStream getErrorStream() {
    return InputStream.nullInputStream(); // copied to the wrapper's stderr
  }

  /** Copies what is appended to a file to a stream, from the file's end when it starts, until stopped. */
  static final class Tail {
    private final Path file;
    private final PrintStream to;
    private final Thread thread;
    private volatile boolean stopping;
    private long position;
    private FileChannel channel; // kept open between copies; opened once the file is there

    private Tail(Path file, PrintStream to, long from) {
      this.file = file;
      this.to = to;
      this.position = from;
      this.thread = Thread.ofPlatform().daemon().name("thaw-triton-output").unstarted(this::run);
    }

    static Tail start(Path file, PrintStream to) {
      long from = file.toFile().length(); // 0 when there is none yet
      Tail t = new Tail(file, to, from);
      t.thread.start();
      return t;
    }

    private void run() {
      ByteBuffer buffer = ByteBuffer.allocate(64 << 10);
      try {
        while (!stopping) {
          if (copy(buffer) == 0) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
          }
        }
        while (copy(buffer) > 0) {
          // what was written before the end
        }
      } finally {
        if (channel != null) {
          try {
            channel.close();
          } catch (IOException e) {
            // read-only: nothing lost
          }
        }
      }
    }

    /** Copies what was appended since the last call; returns how many bytes. */
    private int copy(ByteBuffer buffer) {
      try {
        if (channel == null) {
          channel = FileChannel.open(file, StandardOpenOption.READ);
        }
        if (channel.size() < position) {
          position = 0; // truncated
        }
        buffer.clear();
        int n = channel.read(buffer, position);
        if (n <= 0) {
          return 0;
        }
        to.write(buffer.array(), 0, n);
        to.flush();
        position += n;
        return n;
      } catch (IOException e) {
        return 0; // not there yet
      }
    }

    /** Copies what is left, then stops. */
    void stop() {
      stopping = true;
      try {
        thread.join(TimeUnit.SECONDS.toMillis(10));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
