package dev.thaw.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.fuse.LazyMount;
import dev.thaw.fuse.MountOptions;
import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "mount", mixinStandardHelpOptions = true,
    description = {
      "Mount a model read-only: its files appear at once and stream on demand through the chunk cache.",
      "Runs in the foreground and unmounts on Ctrl-C, SIGTERM or `thaw unmount`. When the mount is ready it says so "
          + "in one line on stderr, and with --json also in one JSON object on stdout, for scripts that wait for it."
    })
final class MountCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "SOURCE",
      description = "NAME[:TAG] at --origin, ORIGIN#NAME[:TAG], a manifest digest (sha256:...) at --origin, "
          + "or s3://bucket/prefix/ / file:///dir read in direct mode.")
  String source;

  @Parameters(index = "1", paramLabel = "MOUNTPOINT", description = "Directory to mount at (created if missing).")
  Path mountPoint;

  @Mixin StoreOptions store;

  @Option(names = "--record-profile",
      description = "Record the order in which chunks are first read; saved when the mount ends or on `thaw profile save`.")
  boolean recordProfile;

  @Option(names = "--prefetch", paramLabel = "auto|off", defaultValue = "auto",
      description = "auto: prefetch the model's recorded access profile, if there is one. Default: ${DEFAULT-VALUE}.")
  String prefetch;

  @Option(names = "--read-timeout", paramLabel = "DURATION", defaultValue = "60s", converter = Units.DurationConverter.class,
      description = "A read whose chunk cannot be had this long (retries included) fails with EIO. Default: ${DEFAULT-VALUE}.")
  Duration readTimeout;

  @Option(names = "--allow-other", description = "Let other users read the mount (needs user_allow_other unless root).")
  boolean allowOther;

  @Option(names = "--passthrough", description = "Let the kernel read a file once read whole from its verified copy "
      + "in the cache (FUSE passthrough; Linux 6.9+, root). Not for servers to be checkpointed: CRIU would record the "
      + "copy's path, not the mount's.")
  boolean passthrough;

  @Option(names = "--json", description = "When ready, print one JSON object on stdout: mount_point, model, digest, "
      + "entries, bytes, ms (to ready), pid, prefetch_chunks. For scripts that wait for the mount; logs stay on stderr.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    if (!prefetch.equals("auto") && !prefetch.equals("off")) {
      throw new IllegalArgumentException("--prefetch must be auto or off, not " + prefetch);
    }
    long start = System.nanoTime();
    Path mnt = mountPoint.toAbsolutePath().normalize();
    MountRegistry registry = new MountRegistry();
    StoreOptions.Resolved r = store.resolve(source);
    ChunkCache cache = null;
    ModelReader reader = null;
    LazyMount mount = null;
    try {
      cache = store.openCache();
      reader = ModelReader.open(r.manifest(), r.origin(), cache, ReaderOptions.DEFAULT
          .withParallelism(store.parallelism).withRecordProfile(recordProfile).withReadTimeout(readTimeout));
      mount = LazyMount.mount(reader, mnt, MountOptions.DEFAULT.withAllowOther(allowOther).withPassthrough(passthrough).withName(MountOptions.thawName(source, r.manifest().digest())));
      // The profile is looked up once the tree is visible: the mount need not wait for one more request.
      Optional<AccessProfile> profile = prefetch.equals("auto")
          ? r.store().profile(r.manifest(), cache.directory()) : Optional.empty();
      profile.ifPresent(reader::prefetch);
      Properties p = new Properties();
      p.setProperty("pid", Long.toString(ProcessHandle.current().pid()));
      p.setProperty("mountpoint", mnt.toString());
      p.setProperty("source", source);
      p.setProperty("digest", r.manifest().digest());
      p.setProperty("profileSaves", "0");
      registry.write(mnt, p);
      long readyMs = (System.nanoTime() - start) / 1_000_000;
      System.err.printf(Locale.ROOT, "thaw mount: ready: %s at %s in %d ms (%d entries, %s)%s%n", r.display(), mnt,
          readyMs, r.manifest().entries().size(), Units.bytes(r.manifest().totalBytes()),
          profile.map(pr -> "; prefetching its profile of " + pr.chunkCount() + " chunks").orElse(""));
      System.err.flush();
      if (json) {
        ObjectNode ready = JsonOut.object();
        ready.put("mount_point", mnt.toString());
        ready.put("model", r.display());
        ready.put("digest", r.manifest().digest());
        ready.put("entries", r.manifest().entries().size());
        ready.put("bytes", r.manifest().totalBytes());
        ready.put("ms", readyMs);
        ready.put("pid", ProcessHandle.current().pid());
        ready.put("prefetch_chunks", profile.map(AccessProfile::chunkCount).orElse(0));
        JsonOut.print(System.out, ready);
      }

      Session session = new Session(r, cache, reader, mount, registry, mnt, p);
      Thread hook = new Thread(session::end, "thaw-unmount");
      Runtime.getRuntime().addShutdownHook(hook);
      while (mount.isMounted()) {
        if (registry.takeProfileSaveRequest(mnt)) {
          session.saveProfile();
        }
        if (registry.takeUnmountRequest(mnt)) {
          break; // thaw unmount: end the session here, so libfuse unmounts and its loop ends at once
        }
        Thread.sleep(100);
      }
      // Asked to unmount, or unmounted from outside (fusermount3 -u), or the shutdown hook is ending the session on
      // a signal: end it (or wait until the hook has ended it) and return.
      session.end();
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException shuttingDown) {
        // a signal: the hook has ended the session
      }
      return 0;
    } catch (IOException | RuntimeException | InterruptedException e) {
      if (mount != null) {
        mount.close();
      }
      if (reader != null) {
        reader.close();
      }
      if (cache != null) {
        cache.close();
      }
      r.close();
      throw e;
    }
  }

  /** Everything a mount holds, released once, whoever ends it. */
  private final class Session {
    private final StoreOptions.Resolved resolved;
    private final ChunkCache cache;
    private final ModelReader reader;
    private final LazyMount mount;
    private final MountRegistry registry;
    private final Path mnt;
    private final Properties properties;
    private final AtomicBoolean ended = new AtomicBoolean();
    private final java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);

    Session(StoreOptions.Resolved resolved, ChunkCache cache, ModelReader reader, LazyMount mount,
        MountRegistry registry, Path mnt, Properties properties) {
      this.resolved = resolved;
      this.cache = cache;
      this.reader = reader;
      this.mount = mount;
      this.registry = registry;
      this.mnt = mnt;
      this.properties = properties;
    }

    synchronized void saveProfile() {
      if (!recordProfile) {
        System.err.println("thaw mount: no profile to save: this mount was started without --record-profile");
        properties.setProperty("profileError", "this mount was started without --record-profile");
        properties.setProperty("profileSaves", Integer.toString(Integer.parseInt(properties.getProperty("profileSaves")) + 1));
        try {
          registry.write(mnt, properties);
        } catch (IOException e) {
          System.err.println("thaw mount: error: " + e.getMessage());
        }
        return;
      }
      try {
        AccessProfile profile = reader.recordedProfile();
        String where = resolved.store().saveProfile(profile, cache.directory(), !resolved.manifest().isDirect());
        properties.setProperty("profileSaves", Integer.toString(Integer.parseInt(properties.getProperty("profileSaves")) + 1));
        properties.setProperty("profile", where);
        registry.write(mnt, properties);
        System.err.printf(Locale.ROOT, "thaw mount: saved access profile of %d chunks to %s%n", profile.chunkCount(), where);
      } catch (IOException | RuntimeException e) {
        System.err.println("thaw mount: error: could not save the access profile: " + e.getMessage());
      }
    }

    /** Ends the session; a second caller (the main loop while the shutdown hook ends it) waits until it has ended. */
    void end() {
      if (!ended.compareAndSet(false, true)) {
        try {
          done.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return;
      }
      try {
        end0();
      } finally {
        done.countDown();
      }
    }

    private void end0() {
      saveProfile0();
      try {
        mount.close();
      } catch (IOException e) {
        System.err.println("thaw mount: error: " + e.getMessage());
      }
      reader.close();
      try {
        cache.close();
        registry.remove(mnt);
      } catch (IOException e) {
        System.err.println("thaw mount: error: " + e.getMessage());
      }
      resolved.close();
      System.err.printf(Locale.ROOT, "thaw mount: unmounted %s (%s fetched, %d blocked reads, %d failed reads)%n", mnt,
          Units.bytes(reader.bytesFetched()), reader.blockedReads(), mount.fileSystem().failedReads());
    }

    private void saveProfile0() {
      if (recordProfile) {
        saveProfile();
      }
    }
  }
}
