package dev.thaw.cli;

import dev.thaw.fuse.LazyMount;
import dev.thaw.fuse.MountOptions;
import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ReaderOptions;
import dev.thaw.sidecar.TritonRepositories;
import dev.thaw.triton.ModelLoads;
import dev.thaw.triton.TritonCommandLine;
import dev.thaw.triton.TritonWrapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "triton", mixinStandardHelpOptions = true,
    description = {
      "Run Triton Inference Server with its model repositories streamed lazily through Thaw.",
      "Put `thaw triton --` in front of the tritonserver command. Each --model-repository that is s3://bucket/path, "
          + "s3://[http://|https://]host:port/bucket/path (Triton's forms, with its AWS_* variables; the objects are "
          + "read where they are, no upload) or thaw://NAME[:TAG] (pushed to --origin) is mounted read-only and "
          + "Triton reads the mount; local directories are passed on as they are. Triton starts with "
          + "--model-control-mode=explicit on loopback ports: --load-model models (* for all) load at start, every "
          + "other model on its first request, which waits while Thaw has Triton load it. Thaw serves the HTTP, gRPC and metrics ports Triton "
          + "was asked for. Every run records which chunks Triton reads; later runs prefetch each model's part of that "
          + "profile as the model loads, and each model's cold start (its first request to its first answer) is "
          + "printed with Triton's share and Thaw's.",
      "Triton's output passes through; its exit status is thaw's. SIGTERM or Ctrl-C is passed on to Triton, then the "
          + "mounts end.",
      "With --snapshot NAME, Triton runs as PID 1 of a PID namespace of its own (needs root and CRIU). Once warm (its "
          + "--load-model models loaded and the first inference through Thaw answered) it is snapshotted and runs on; "
          + "the probe kept with the snapshot is that inference's HTTP JSON request and the answer Triton gives it, or, "
          + "for an inference over gRPC, its model's readiness (GET /v2/models/MODEL/ready). The next start with the "
          + "same NAME, the same command line and the same repository manifests mounts the repositories where they "
          + "were and restores Triton (on the loopback ports it had) instead of booting it, checking it answers the "
          + "probe as when taken; when anything differs or the restore fails, it says why in one line and boots.",
      "Example: thaw triton -- tritonserver --model-repository=s3://models/triton --http-port=8000"
    })
final class TritonCommand implements Callable<Integer> {
  @Mixin StoreOptions store;

  @Option(names = "--mount-root", paramLabel = "DIR",
      description = "Where the repositories are mounted (repository-0, repository-1, ...). Default: a new directory "
          + "under java.io.tmpdir, removed at the end.")
  Path mountRoot;

  @Option(names = "--prefetch", paramLabel = "auto|off", defaultValue = "auto",
      description = "auto: prefetch each repository's recorded access profile, or record one when there is none. "
          + "Default: ${DEFAULT-VALUE}.")
  String prefetch;

  @Option(names = "--read-timeout", paramLabel = "DURATION", defaultValue = "60s",
      converter = Units.DurationConverter.class,
      description = "A read whose chunk cannot be had this long (retries included) fails with EIO. "
          + "Default: ${DEFAULT-VALUE}.")
  Duration readTimeout;

  @Option(names = "--idle-unload", paramLabel = "[MODEL=]DURATION",
      description = "Unload a model nobody has asked for this long (it loads again on its next request; its chunks "
          + "are the first the cache evicts); 0s: never. MODEL=DURATION sets one model's time; repeatable. "
          + "Default: never.")
  List<String> idleUnload = new ArrayList<>();

  @Option(names = "--snapshot", paramLabel = "NAME",
      description = "Snapshot Triton once warm, as NAME, and restore it from that snapshot on later starts with the "
          + "same command line and repositories. Kept on this node, owner-only. Needs root and CRIU.")
  String snapshot;

  @Option(names = "--snapshots", paramLabel = "DIR", defaultValue = "${env:THAW_SNAPSHOTS}",
      description = "Where this node keeps snapshots; Triton's output and what each --snapshot was taken of go to "
          + "DIR/.triton/NAME/. Default: $THAW_SNAPSHOTS, else ~/.local/share/thaw/snapshots.")
  Path snapshots;

  @Parameters(paramLabel = "TRITONSERVER", arity = "1..*",
      description = "The tritonserver command and its arguments, after --.")
  List<String> command;

  @Override
  public Integer call() throws Exception {
    if (!prefetch.equals("auto") && !prefetch.equals("off")) {
      throw new IllegalArgumentException("--prefetch must be auto or off, not " + prefetch);
    }
    TritonCommandLine line = TritonCommandLine.parse(command, System.getenv());
    TritonSnapshot snap = null;
    if (snapshot != null) {
      if (!line.http().allowed()) {
        throw new IllegalArgumentException("--snapshot needs Triton's HTTP endpoint (its readiness and the snapshot's "
            + "probe are HTTP requests on loopback): drop --allow-http=false");
      }
      snap = new TritonSnapshot(snapshot, snapshots != null ? snapshots : SnapshotOptions.DEFAULT_ROOT,
          store.originUri(), command);
      ChildReaper.become(); // a restored Triton becomes this process's child, and its exit status thaw's
    }
    Mounts mounts = new Mounts();
    try {
      List<Path> repositories = mounts.open(line);
      TritonRepositories served = new TritonRepositories(mounts.served());
      served.prefetchAtStart(line.loadModels());
      TritonWrapper triton;
      if (snap == null) {
        triton = TritonWrapper.start(line, repositories, limits(), new Said(served));
      } else {
        TritonSnapshot.Start start = snap.restoreOrBoot(line, repositories, mounts.manifests());
        try {
          triton = TritonWrapper.start(line, repositories, limits(), new Said(served), start.ports(),
              start.launcher());
        } catch (IOException | RuntimeException e) {
          start.abandon();
          throw e;
        }
        if (!start.restored()) {
          snap.takeWhenWarm(triton, line, repositories, mounts.manifests());
        }
      }
      AtomicBoolean ending = new AtomicBoolean();
      Thread hook = new Thread(() -> {
        // SIGTERM or Ctrl-C: Triton first, then the mounts it read; thaw then exits with Triton's status
        ending.set(true);
        int status;
        try {
          status = triton.stop();
        } catch (InterruptedException e) {
          status = 143;
        }
        triton.closeProxies();
        mounts.close();
        System.err.flush();
        Runtime.getRuntime().halt(status);
      }, "thaw-triton-stop");
      Runtime.getRuntime().addShutdownHook(hook);
      int status = triton.waitFor();
      try {
        if (ending.get()) {
          throw new IllegalStateException("shutting down");
        }
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException shuttingDown) {
        Thread.sleep(Long.MAX_VALUE); // the hook is ending the run and halts with Triton's status
      }
      System.err.printf(Locale.ROOT, "thaw triton: Triton exited with status %d%n", status);
      triton.closeProxies();
      mounts.close();
      return status;
    } catch (IOException | RuntimeException | InterruptedException e) {
      mounts.close();
      throw e;
    }
  }

  /** What happens to models, done (prefetches, evictions) and said on stderr, one line each. */
  private record Said(TritonRepositories served) implements ModelLoads.Listener {
    @Override
    public boolean serves(String model) {
      return served.serves(model);
    }

    @Override
    public void loading(ModelLoads.ColdStart coldStart) {
      String model = coldStart.model();
      int chunks = served.prefetch(model);
      System.err.printf(Locale.ROOT, "thaw triton: loading model '%s'%s%n", model,
          chunks > 0 ? "; prefetching its " + chunks + " recorded chunks" : "");
    }

    @Override
    public void loadFailed(String model, String reason) {
      System.err.printf(Locale.ROOT, "thaw triton: loading model '%s' failed: %s%n", model, reason);
    }

    @Override
    public void unloaded(String model) {
      int chunks = served.release(model);
      System.err.printf(Locale.ROOT, "thaw triton: model '%s' unloaded; its %d cached chunks are the first to "
          + "evict%n", model, chunks);
    }

    @Override
    public void servedFromZero(ModelLoads.ColdStart c) {
      System.err.printf(Locale.ROOT, "thaw triton: model '%s' served from zero in %d ms (Triton's load and first "
          + "inference %d ms, Thaw's share %d ms: %d ms before the load, %d ms handing the request on)%n", c.model(),
          c.total().toMillis(), c.inTriton().toMillis(), c.inThaw().toMillis(), c.beforeLoad().toMillis(),
          c.handOff().toMillis());
    }
  }

  /** The limits on loads, with --idle-unload's times. */
  ModelLoads.Limits limits() {
    ModelLoads.Limits limits = ModelLoads.DEFAULT_LIMITS;
    for (String v : idleUnload) {
      int eq = v.indexOf('=');
      if (eq < 0) {
        limits = limits.withIdleUnload(Units.parseDuration(v));
      } else if (eq == 0) {
        throw new IllegalArgumentException("--idle-unload " + v + " names no model before '='");
      } else {
        limits = limits.withIdleUnload(v.substring(0, eq), Units.parseDuration(v.substring(eq + 1)));
      }
    }
    return limits;
  }

  /** The repositories Thaw serves: one cache, one reader and mount each; ended once, saving recorded profiles. */
  private final class Mounts {
    private final List<Mounted> mounted = new ArrayList<>();
    private final List<String> manifests = new ArrayList<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    private ChunkCache cache;
    private Path root;
    private boolean rootMade;

    private record Mounted(StoreOptions.Resolved resolved, TritonRepositories.Repository served, LazyMount mount) {}

    /** Each repository's manifest digest, in the command's order; null for a local directory. */
    List<String> manifests() {
      return java.util.Collections.unmodifiableList(manifests);
    }

    List<TritonRepositories.Repository> served() {
      return mounted.stream().map(Mounted::served).toList();
    }

    /** Mounts each repository Thaw serves; returns the directory Triton reads for each, in order. */
    List<Path> open(TritonCommandLine line) throws IOException {
      List<Path> paths = new ArrayList<>();
      int i = 0;
      for (TritonCommandLine.Repository repository : line.repositories()) {
        if (!repository.mounted()) {
          paths.add(Path.of(repository.given()));
          manifests.add(null);
          continue;
        }
        if (cache == null) {
          cache = store.openCache();
          rootMade = mountRoot == null;
          // a snapshot's Triton reads its repositories where the restored one will: a path its name decides
          root = mountRoot != null ? Files.createDirectories(mountRoot.toAbsolutePath())
              : snapshot != null ? Files.createDirectories(Path.of(System.getProperty("java.io.tmpdir"),
                  "thaw-triton-" + snapshot))
              : Files.createTempDirectory("thaw-triton-");
        }
        Path at = root.resolve("repository-" + i++);
        paths.add(mount(repository, at));
        manifests.add(mounted.getLast().resolved().manifest().digest());
      }
      return paths;
    }

    private Path mount(TritonCommandLine.Repository repository, Path at) throws IOException {
      long start = System.nanoTime();
      StoreOptions.Resolved r;
      try {
        r = store.resolve(repository.source());
      } catch (IOException e) {
        throw new IOException("cannot read the model repository " + repository.given() + ": " + e.getMessage(), e);
      }
      ModelReader reader = null;
      try {
        Optional<AccessProfile> profile = prefetch.equals("auto")
            ? r.store().profile(r.manifest(), cache.directory()) : Optional.empty();
        // every run records: a model loaded for the first time adds itself to the profile
        reader = ModelReader.open(r.manifest(), r.origin(), cache, ReaderOptions.DEFAULT
            .withParallelism(store.parallelism).withRecordProfile(prefetch.equals("auto"))
            .withReadTimeout(readTimeout));
        LazyMount mount = LazyMount.mount(reader, at, MountOptions.DEFAULT
            .withName(MountOptions.thawName(repository.source(), r.manifest().digest())));
        mounted.add(new Mounted(r, new TritonRepositories.Repository(repository.given(), at, reader, profile), mount));
        System.err.printf(Locale.ROOT, "thaw triton: %s mounted at %s in %d ms (%d entries, %s)%s%n",
            repository.given(), at, (System.nanoTime() - start) / 1_000_000, r.manifest().entries().size(),
            Units.bytes(r.manifest().totalBytes()), profile.map(p -> "; each model's part of its profile of "
                + p.chunkCount() + " chunks is prefetched as the model loads")
                .orElse(prefetch.equals("auto") ? "; recording its access profile" : ""));
        return at;
      } catch (IOException | RuntimeException e) {
        if (reader != null) {
          reader.close();
        }
        r.close();
        throw e;
      }
    }

    /** Saves recorded profiles, unmounts, and closes the cache. Idempotent. */
    void close() {
      if (!closed.compareAndSet(false, true)) {
        return;
      }
      for (Mounted m : mounted) {
        TritonRepositories.Repository served = m.served();
        if (prefetch.equals("auto")) {
          try {
            Optional<AccessProfile> grown = TritonRepositories.profileToSave(served);
            if (grown.isPresent()) {
              // a direct-mode origin is the user's bucket: the profile stays in the cache
              String where = m.resolved().store().saveProfile(grown.get(), cache.directory(),
                  !m.resolved().manifest().isDirect());
              System.err.printf(Locale.ROOT, "thaw triton: saved the access profile of %s (%d chunks) to %s%n",
                  served.at(), grown.get().chunkCount(), where);
            }
          } catch (IOException | RuntimeException e) {
            System.err.println("thaw triton: error: could not save the access profile of " + served.at() + ": "
                + e.getMessage());
          }
        }
        try {
          m.mount().close();
        } catch (IOException e) {
          System.err.println("thaw triton: error: " + e.getMessage());
        }
        served.reader().close();
        m.resolved().close();
        if (rootMade) {
          try {
            Files.deleteIfExists(served.at());
          } catch (IOException e) {
            // a mount point left behind says what happened
          }
        }
      }
      try {
        if (cache != null) {
          cache.close();
        }
        if (rootMade && root != null) {
          Files.deleteIfExists(root);
        }
      } catch (IOException e) {
        System.err.println("thaw triton: error: " + e.getMessage());
      }
    }
  }
}
