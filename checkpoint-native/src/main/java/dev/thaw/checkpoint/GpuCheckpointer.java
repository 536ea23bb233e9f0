package dev.thaw.checkpoint;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Takes every CUDA process of a tree through the checkpoint API in step: all are locked (within a timeout), then all
 * checkpointed; CRIU dumps the tree between {@link #suspend} and {@link #resume}. A failure at any step puts every
 * process it already moved back where it was (restored, unlocked), in reverse order, so the server keeps running, and
 * reports the first cause with anything the rollback could not undo.
 */
public final class GpuCheckpointer {
  private final CudaCheckpoint cuda;
  private final Duration lockTimeout;

  public GpuCheckpointer(CudaCheckpoint cuda, Duration lockTimeout) {
    this.cuda = cuda;
    this.lockTimeout = lockTimeout;
  }

  /** Locks, then checkpoints, every process in {@code pids}; on failure leaves them all running. */
  public void suspend(List<Long> pids) throws IOException {
    List<Long> locked = new ArrayList<>();
    List<Long> checkpointed = new ArrayList<>();
    try {
      for (long pid : pids) {
        cuda.lock(pid, lockTimeout);
        locked.add(pid);
      }
      for (long pid : pids) {
        cuda.checkpoint(pid);
        checkpointed.add(pid);
      }
    } catch (IOException | RuntimeException e) {
      rollBack(checkpointed, locked, e);
      throw e;
    }
  }

  /** After CRIU's restore (or after a dump with --leave-running): restores and unlocks every process. */
  public void resume(List<Long> pids, List<CudaCheckpoint.GpuPair> pairs) throws IOException {
    IOException first = null;
    for (long pid : pids) {
      try {
        cuda.restoreThreadId(pid); // fails, naming the process, when it is not a checkpointed CUDA process
        cuda.restore(pid, pairs);
        cuda.unlock(pid);
      } catch (IOException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  private void rollBack(List<Long> checkpointed, List<Long> locked, Exception cause) {
    for (int i = checkpointed.size() - 1; i >= 0; i--) {
      try {
        cuda.restore(checkpointed.get(i), List.of());
      } catch (IOException | RuntimeException e) {
        cause.addSuppressed(e);
      }
    }
    for (int i = locked.size() - 1; i >= 0; i--) {
      try {
        cuda.unlock(locked.get(i));
      } catch (IOException | RuntimeException e) {
        cause.addSuppressed(e);
      }
    }
  }
}
