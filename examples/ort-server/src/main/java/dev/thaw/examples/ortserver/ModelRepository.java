package dev.thaw.examples.ortserver;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The models of one Triton-layout repository and their life cycles: which are loaded, loading, unloading or failed,
 * and why.
 *
 * <p>States follow Triton's: a model no one asked for has no state (the index lists its name only); loading it makes
 * it LOADING, then READY, or UNAVAILABLE with the load error as reason; unloading makes it UNLOADING until inferences
 * in flight finish, then UNAVAILABLE ("unloaded"). Loading a READY model reloads it as Triton does: the old session
 * serves until the new one is ready, then is closed once its inferences in flight finish; if the reload fails, the
 * old one keeps serving. Loads and unloads of one model are serialized; different models load in parallel.
 *
 * <p>The models loaded at start are "wanted" ({@link #expect}) until an unload request; {@link #allWantedReady} (every
 * wanted model READY) is the server's readiness once its startup loads are done. Loads requested later do not change
 * readiness, as in Triton, where a model that failed to load is left out of the server's readiness.
 */
final class ModelRepository implements AutoCloseable {
  enum State { LOADING, READY, UNLOADING, UNAVAILABLE }

  /** A line of the repository index; version, state and reason are empty for a model never loaded. */
  record IndexEntry(String name, String version, String state, String reason) {}

  /** One model's state, replaced as a whole so that readers see a consistent one without locking. */
  private record Snapshot(State state, long version, String reason, LoadedModel model, boolean wanted) {
    static final Snapshot NEVER_LOADED = new Snapshot(null, -1, "", null, false);
  }

  private static final class Slot {
    final ReentrantLock lifecycle = new ReentrantLock();
    volatile Snapshot current = Snapshot.NEVER_LOADED;
  }

  private final Path root;
  private final boolean warmup;
  private final Path nativeDir;
  private final Map<String, String> sessionConfig;
  private final Runnable onChange;
  private final ConcurrentHashMap<String, Slot> slots = new ConcurrentHashMap<>();
  private volatile boolean closed;

  /**
   * @param warmup run one inference of zeros before a model reports READY
   * @param nativeDir where ONNX Runtime's natives go (null: the default)
   * @param sessionConfig ONNX Runtime session configuration entries for every model
   * @param onChange called after every state change (the server re-evaluates its readiness)
   */
  ModelRepository(Path root, boolean warmup, Path nativeDir, Map<String, String> sessionConfig,
      Runnable onChange) {
    this.root = root;
    this.warmup = warmup;
    this.nativeDir = nativeDir;
    this.sessionConfig = Map.copyOf(sessionConfig);
    this.onChange = onChange;
  }

  Path root() {
    return root;
  }

  /** The model directories in the repository, sorted. */
  List<String> modelNames() {
    TreeSet<String> names = new TreeSet<>();
    try (DirectoryStream<Path> dirs = Files.newDirectoryStream(root, Files::isDirectory)) {
      for (Path dir : dirs) {
        names.add(dir.getFileName().toString());
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list the model repository " + root + ": " + e, e);
    }
    return List.copyOf(names);
  }

  /** Marks models wanted before their loads start, so the server is not ready while they wait for a thread. */
  void expect(List<String> names) {
    for (String name : names) {
      Slot slot = slots.computeIfAbsent(name, n -> new Slot());
      slot.lifecycle.lock();
      try {
        Snapshot s = slot.current;
        slot.current = new Snapshot(s.state(), s.version(), s.reason(), s.model(), true);
      } finally {
        slot.lifecycle.unlock();
      }
    }
  }

  /**
   * Loads, or reloads, a model and logs the outcome.
   *
   * @throws InferenceError INTERNAL when the repository has no such model, INVALID_ARG when it fails to load (as
   *     Triton: "load failed for model 'x': ...")
   */
  void load(String name) {
    if (closed) {
      throw InferenceError.unavailable("Server is shutting down");
    }
    Path dir = modelDir(name);
    if (dir == null) {
      String reason = "the model repository " + root + " has no model directory '" + name + "'";
      OrtServer.log("failed to load model '" + name + "': " + reason);
      Slot expected = slots.get(name);
      if (expected != null && expected.current.state() == null) {
        expected.current = new Snapshot(State.UNAVAILABLE, -1, reason, null, expected.current.wanted());
        onChange.run();
      }
      throw InferenceError.internal("failed to load '" + name + "', failed to poll from model repository");
    }
    Slot slot = slots.computeIfAbsent(name, n -> new Slot());
    slot.lifecycle.lock();
    try {
      Snapshot before = slot.current;
      LoadedModel serving = before.state() == State.READY ? before.model() : null;
      long start = System.nanoTime();
      LoadedModel.Plan plan;
      try {
        plan = LoadedModel.plan(name, dir);
      } catch (LoadedModel.LoadFailure e) {
        throw failed(slot, name, serving, before.version(), e.getMessage());
      } catch (RuntimeException e) {
        throw failed(slot, name, serving, before.version(), "unexpected error: " + e);
      }
      OrtServer.log("loading model '" + name + "' version " + plan.version() + " from " + dir);
      slot.current = serving != null
          ? before
          : new Snapshot(State.LOADING, plan.version(), "", null, before.wanted());
      onChange.run();
      LoadedModel loaded;
      try {
        loaded = LoadedModel.open(plan, nativeDir, sessionConfig);
      } catch (LoadedModel.LoadFailure e) {
        throw failed(slot, name, serving, plan.version(), e.getMessage());
      } catch (RuntimeException e) {
        throw failed(slot, name, serving, plan.version(), "unexpected error: " + e);
      }
      OrtServer.log("model '" + name + "' version " + plan.version() + " loaded in " + millisSince(start) + " ms");
      if (warmup) {
        long warmupStart = System.nanoTime();
        try {
          loaded.warmup();
        } catch (RuntimeException e) {
          loaded.close();
          throw failed(slot, name, serving, plan.version(), "warmup failed: " + e.getMessage());
        }
        OrtServer.log("model '" + name + "' warmed up in " + millisSince(warmupStart) + " ms");
      }
      if (closed) {
        loaded.close(); // the server closed while this model loaded: do not leave a session behind
        throw InferenceError.unavailable("Server is shutting down");
      }
      slot.current = new Snapshot(State.READY, plan.version(), "", loaded, slot.current.wanted());
      if (serving != null) {
        serving.close(); // waits for the old session's inferences in flight
      }
      onChange.run();
    } finally {
      slot.lifecycle.unlock();
    }
  }

  /**
   * Unloads a model: new requests are refused at once, inferences in flight finish, then the session is freed.
   * Unloading a model that is not loaded does nothing, as in Triton.
   */
  void unload(String name) {
    Slot slot = slots.get(name);
    if (slot == null) {
      return;
    }
    slot.lifecycle.lock();
    try {
      Snapshot s = slot.current;
      if (s.model() == null) {
        slot.current = new Snapshot(s.state(), s.version(), s.reason(), null, false);
      } else {
        slot.current = new Snapshot(State.UNLOADING, s.version(), "", null, false);
        onChange.run();
        s.model().close();
        slot.current = new Snapshot(State.UNAVAILABLE, s.version(), "unloaded", null, false);
        OrtServer.log("unloaded model '" + name + "' version " + s.version());
      }
      onChange.run();
    } finally {
      slot.lifecycle.unlock();
    }
  }

  /**
   * The READY model a request names, with Triton's errors otherwise.
   *
   * @param version empty for the version the policy serves, else a version number
   */
  LoadedModel model(String name, String version) {
    long requested = parseVersion(version);
    Slot slot = slots.get(name);
    Snapshot s = slot == null ? Snapshot.NEVER_LOADED : slot.current;
    if (s.state() == null) {
      throw InferenceError.notFound("Request for unknown model: '" + name + "' is not found");
    }
    if (requested == -1) {
      if (s.state() != State.READY || s.model() == null) {
        throw InferenceError.notFound("Request for unknown model: '" + name + "' has no available versions");
      }
      return s.model();
    }
    if (requested != s.version()) {
      throw InferenceError.notFound("Request for unknown model: '" + name + "' version " + requested
          + " is not found");
    }
    if (s.state() != State.READY || s.model() == null) {
      throw InferenceError.unavailable("Request for unknown model: '" + name + "' version " + requested
          + " is not at ready state");
    }
    return s.model();
  }

  /** Whether {@link #model} would answer; never an error, as Triton's model readiness. */
  boolean isReady(String name, String version) {
    try {
      model(name, version);
      return true;
    } catch (InferenceError e) {
      return false;
    }
  }

  /** Every model in the repository or with a state, sorted by name; with {@code readyOnly}, the READY ones. */
  List<IndexEntry> index(boolean readyOnly) {
    TreeSet<String> names = new TreeSet<>(modelNames());
    slots.forEach((name, slot) -> {
      if (slot.current.state() != null) {
        names.add(name);
      }
    });
    List<IndexEntry> entries = new ArrayList<>();
    for (String name : names) {
      Slot slot = slots.get(name);
      Snapshot s = slot == null ? Snapshot.NEVER_LOADED : slot.current;
      if (readyOnly && s.state() != State.READY) {
        continue;
      }
      entries.add(new IndexEntry(name, s.version() < 0 ? "" : Long.toString(s.version()),
          s.state() == null ? "" : s.state().name(), s.reason()));
    }
    return entries;
  }

  /** The models loaded and serving now, by name. */
  List<LoadedModel> serving() {
    List<LoadedModel> out = new ArrayList<>();
    new TreeMap<>(slots).forEach((name, slot) -> {
      Snapshot s = slot.current;
      if (s.state() == State.READY && s.model() != null) {
        out.add(s.model());
      }
    });
    return out;
  }

  /** Whether every model that was asked to load (and not since unloaded) is READY. */
  boolean allWantedReady() {
    for (Slot slot : slots.values()) {
      Snapshot s = slot.current;
      if (s.wanted() && s.state() != State.READY) {
        return false;
      }
    }
    return true;
  }

  /** Unloads every model, waiting up to {@code timeoutMillis} for each one's lifecycle lock (a load in progress). */
  void close(long timeoutMillis) {
    closed = true;
    for (var e : slots.entrySet()) {
      Slot slot = e.getValue();
      boolean locked = false;
      try {
        locked = slot.lifecycle.tryLock(timeoutMillis, TimeUnit.MILLISECONDS);
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
      }
      Snapshot s = slot.current;
      if (s.model() != null) {
        slot.current = new Snapshot(State.UNAVAILABLE, s.version(), "unloaded", null, false);
        s.model().close();
      }
      if (locked) {
        slot.lifecycle.unlock();
      }
    }
  }

  @Override
  public void close() {
    close(30_000);
  }

  /** The directory of a model, or null when the repository has no such model (or the name is not a plain name). */
  private Path modelDir(String name) {
    if (name.isEmpty() || name.equals(".") || name.equals("..") || name.contains("/") || name.contains("\\")
        || name.indexOf('\0') >= 0) {
      return null;
    }
    Path dir = root.resolve(name);
    return Files.isDirectory(dir) ? dir : null;
  }

  private InferenceError failed(Slot slot, String name, LoadedModel serving, long version, String reason) {
    OrtServer.log("failed to load model '" + name + "': " + reason);
    if (serving == null) {
      slot.current = new Snapshot(State.UNAVAILABLE, version, reason, null, slot.current.wanted());
    }
    onChange.run();
    return InferenceError.invalidArg("load failed for model '" + name + "': " + reason);
  }

  private static long parseVersion(String version) {
    if (version == null || version.isEmpty()) {
      return -1;
    }
    if (version.matches("0|[1-9][0-9]{0,17}")) {
      return Long.parseLong(version);
    }
    throw InferenceError.invalidArg("failed to get model version from specified version string '" + version
        + "', version should be an integral value > 0");
  }

  private static long millisSince(long startNanos) {
    return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
  }
}
