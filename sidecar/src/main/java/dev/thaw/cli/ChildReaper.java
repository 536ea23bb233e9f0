package dev.thaw.cli;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * This JVM as the reaper of the processes orphaned below it ({@code prctl(PR_SET_CHILD_SUBREAPER)}), and the exit
 * status of such a process ({@code waitpid}). A server CRIU restores detached is the child of {@code criu restore},
 * which exits once it is done: the restored server then becomes this JVM's child, and its exit status can be
 * collected here as a started child's is. The JDK reaps only the processes it started, each by its PID, so the two
 * never take each other's.
 */
final class ChildReaper {
  private static final int PR_SET_CHILD_SUBREAPER = 36;
  private static final int EINTR = 4;
  private static final Linker LINKER = Linker.nativeLinker();
  private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
  private static final VarHandle ERRNO = CALL_STATE.varHandle(
      java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));
  private static final MethodHandle PRCTL = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("prctl"),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG),
      Linker.Option.firstVariadicArg(1), Linker.Option.captureCallState("errno"));
  private static final MethodHandle WAITPID = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("waitpid"),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
      Linker.Option.captureCallState("errno"));

  private ChildReaper() {}

  /** Makes this JVM the reaper of the processes orphaned below it. */
  static void become() throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment state = arena.allocate(CALL_STATE);
      int r = (int) PRCTL.invokeExact(state, PR_SET_CHILD_SUBREAPER, 1L);
      if (r != 0) {
        throw new IOException("prctl(PR_SET_CHILD_SUBREAPER) failed (errno " + (int) ERRNO.get(state, 0L)
            + "): a restored server's exit status could not be collected");
      }
    } catch (IOException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IOException("prctl(PR_SET_CHILD_SUBREAPER) failed: " + t, t);
    }
  }

  /**
   * Waits until this JVM's child {@code pid} exits, and returns its status as a shell gives it: its exit code, or
   * 128 + the signal that ended it.
   *
   * @throws IOException when {@code pid} is not this JVM's child (errno ECHILD) or cannot be waited for
   */
  static int waitFor(long pid) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment status = arena.allocate(ValueLayout.JAVA_INT);
      MemorySegment state = arena.allocate(CALL_STATE);
      while (true) {
        int r = (int) WAITPID.invokeExact(state, (int) pid, status, 0);
        if (r == pid) {
          int s = status.get(ValueLayout.JAVA_INT, 0);
          int signal = s & 0x7f;
          return signal == 0 ? (s >> 8) & 0xff : 128 + signal;
        }
        int errno = (int) ERRNO.get(state, 0L);
        if (r == -1 && errno == EINTR) {
          continue;
        }
        throw new IOException("waitpid(" + pid + ") failed (errno " + errno + (errno == 10 ? ", not this process's"
            + " child" : "") + ")");
      }
    } catch (IOException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new IOException("waitpid(" + pid + ") failed: " + t, t);
    }
  }
}
