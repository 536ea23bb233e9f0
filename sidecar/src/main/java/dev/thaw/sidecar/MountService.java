package dev.thaw.sidecar;

import dev.thaw.fuse.LazyMount;
import dev.thaw.fuse.MountOptions;
import dev.thaw.sidecar.peers.ChunkPeersFactory;
import dev.thaw.sidecar.peers.OwnerFetch;
import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.ChunkRef;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelSource;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origin;
import dev.thaw.store.OriginException;
import dev.thaw.store.Origins;
import dev.thaw.store.ReaderOptions;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.regex.Pattern;

/**
 * The models this sidecar has mounted, all under {@code thaw.mount-root} and all reading through one chunk cache. A
 * mount is a real FUSE mount ({@link LazyMount}); its cold start is timed from the request ({@link ColdStartLog}). Its
 * readers ask the peers the {@link ChunkPeersFactory} gives (none standalone) before the origin, and it fetches for a
 * peer that takes this node for a chunk's owner ({@link OwnerFetch}).
 */
@Singleton
public final class MountService implements OwnerFetch, AutoCloseable {
  private static final Logger LOG = Logger.getLogger(MountService.class.getName());
  private static final Pattern SAFE_NAME = Pattern.compile("[^A-Za-z0-9._-]+");

  /** What a client asks to mount; see docs/api.md. */
  public record MountRequest(String source, String origin, String path, String prefetch) {}

  private final SidecarConfig config;
  private final ColdStartLog coldStarts;
  private final SidecarMetrics metrics;
  private final ChunkCache cache;
  private final Path root;
  private final Map<String, Mounted> mounts = new ConcurrentHashMap<>();
  private final AtomicLong ids = new AtomicLong();
  // what mounts that have ended read and fetched, so the counters never go down
  private final AtomicLong endedRead = new AtomicLong();
  private final AtomicLong endedFromCache = new AtomicLong();
  private final AtomicLong endedFromOrigin = new AtomicLong();
  private final AtomicLong endedFromPeers = new AtomicLong();

  private final ChunkPeersFactory peers;
  private final List<Runnable> onMount = new CopyOnWriteArrayList<>();

  MountService(SidecarConfig config, ColdStartLog coldStarts, SidecarMetrics metrics, ChunkPeersFactory peers)
      throws IOException {
    this.peers = peers;
    this.config = config;
    this.coldStarts = coldStarts;
    this.metrics = metrics;
    this.root = config.getMountRoot().toAbsolutePath().normalize();
    Files.createDirectories(root);
    Path cacheDir = config.getCacheDir();
    this.cache = ChunkCache.open(cacheDir, config.getCacheMaxBytes() != null ? config.getCacheMaxBytes()
        : ChunkCache.defaultMaxBytes(cacheDir));
    var registry = metrics.registry();
    Gauge.builder("thaw.mounts", mounts, Map::size).description("Models mounted").register(registry);
    Gauge.builder("thaw.cache.used", cache, ChunkCache::usedBytes).baseUnit("bytes")
        .description("Bytes in the chunk cache").register(registry);
    Gauge.builder("thaw.cache.capacity", cache, ChunkCache::maxBytes).baseUnit("bytes")
        .description("Most bytes the chunk cache may hold").register(registry);
    FunctionCounter.builder("thaw.fetched", this, s -> s.total(Tally.ORIGIN)).tag("tier", "origin").baseUnit("bytes")
        .description("Bytes mounts fetched into the cache, by where from").register(registry);
    FunctionCounter.builder("thaw.fetched", this, s -> s.total(Tally.PEER)).tag("tier", "peer").baseUnit("bytes")
        .description("Bytes mounts fetched into the cache, by where from").register(registry);
    FunctionCounter.builder("thaw.read", this, s -> s.total(Tally.READ)).baseUnit("bytes")
        .description("Bytes servers read through mounts").register(registry);
    Gauge.builder("thaw.cache.hit.ratio", this, MountService::hitRatio)
        .description("Share of the bytes read through mounts whose chunk was already in the cache").register(registry);
    if (config.getOrigin() != null) {
      // Ready before the first mount asks for it; one that cannot open is reported by that mount.
      String uri = config.getOrigin();
      Thread.ofVirtual().name("thaw-origin-open").start(() -> {
        try {
          Origin o = sharedOrigin(uri, null);
          if (closed.get() && sharedOrigins.remove(uri, o)) { // closed meanwhile: nobody else would close it
            o.close();
          }
        } catch (RuntimeException e) {
          LOG.info(() -> "event=origin_not_opened origin=" + uri + " cause=" + e.getMessage());
        }
      });
    }
  }

  private final class Mounted {
    final String id;
    final String source;
    final String display;
    final Origin origin;
    final Origin ownedOrigin; // closed with the mount: a direct-mode source's; null for a shared configured origin
    final ModelStore store;
    final Manifest manifest;
    final ModelReader reader;
    final LazyMount mount;
    final Instant createdAt = Instant.now();
    final ColdStartLog.ColdStart coldStart;
    volatile String prefetch = "none";

    Mounted(String id, String source, String display, Origin origin, Origin ownedOrigin, ModelStore store,
        Manifest manifest, ModelReader reader, LazyMount mount, ColdStartLog.ColdStart coldStart) {
      this.id = id;
      this.source = source;
      this.display = display;
      this.origin = origin;
      this.ownedOrigin = ownedOrigin;
      this.store = store;
      this.manifest = manifest;
      this.reader = reader;
      this.mount = mount;
      this.coldStart = coldStart;
    }

    MountInfo view() {
      long total = manifest.totalBytes();
      long cached = cachedBytes(manifest);
      return new MountInfo(id, source, display, manifest.digest(), mount.mountPoint().toString(), mount.isMounted(),
          createdAt.toString(), manifest.entries().size(), total, cached, total == 0 ? 1.0 : cached / (double) total,
          new FetchedBytes(reader.bytesFetched(), reader.bytesFromPeers()), reader.bytesRead(), reader.bytesFromCache(),
          reader.blockedReads(), prefetch, coldStart.id());
    }
  }

  /** What {@link #list()} holds for each mount: the mount, or one that cannot be shown, with why. */
  public sealed interface Listed permits MountInfo, BrokenMount {}

  /**
   * A mount: what it serves ({@code source}, {@code resolved} to an origin, the manifest {@code digest}), where, how
   * much of it the cache holds, what it fetched and from where, what servers read through it, its prefetch, and the
   * cold start it began.
   */
  public record MountInfo(String id, String source, String resolved, String digest, String mountpoint, boolean mounted,
      String createdAt, int files, long totalBytes, long cachedBytes, double cacheFill, FetchedBytes fetchedBytes,
      long readBytes, long readFromCacheBytes, long blockedReads, String prefetch, String coldStart)
      implements Listed {}

  /** Bytes a mount fetched into the cache, by where from. */
  public record FetchedBytes(long origin, long peer) {}

  /** A mount whose state cannot be read (a broken manifest), listed with why instead of failing the list. */
  public record BrokenMount(String id, String source, String mountpoint, String error) implements Listed {}

  /** Mounts a model; the request's fields are checked first, each refusal naming its field. */
  public MountInfo mount(MountRequest req) {
    return mount(req, false);
  }

  /**
   * Mounts a source the operator configured (a Triton repository of {@code thaw.triton}): a direct-mode source need
   * not be under {@code thaw.direct-roots}, which bound what API requests may name; its reads are recorded, so that
   * models loaded for the first time join its profile ({@link #served}).
   */
  MountInfo mountConfigured(String source, String path) {
    return mount(new MountRequest(source, null, path, "off"), true);
  }

  private MountInfo mount(MountRequest req, boolean configured) {
    if (req == null || req.source() == null || req.source().isBlank()) {
      throw MountException.invalid("source", "source is required: NAME[:TAG], sha256:DIGEST, or a direct-mode URI"
          + " (s3://bucket/prefix/, file:///dir)");
    }
    String source = req.source().strip();
    String prefetch = req.prefetch() == null ? "auto" : req.prefetch();
    if (!Set.of("auto", "all", "off").contains(prefetch)) {
      throw MountException.invalid("prefetch", "prefetch is auto (the recorded access profile, if any), all or off, not "
          + prefetch);
    }
    ModelSource parsed;
    try {
      parsed = ModelSource.parse(source);
    } catch (IllegalArgumentException e) {
      throw MountException.invalid("source", e.getMessage());
    }
    if (!parsed.isDirect() && parsed.origin() != null) {
      throw MountException.invalid("source", "name the origin in the origin field, not in the source ("
          + parsed.origin() + "#" + parsed.ref() + ")");
    }
    boolean direct = parsed.isDirect();
    if (direct && req.origin() != null) {
      throw MountException.invalid("origin", "a direct-mode source (" + source + ") is its own origin; leave origin out");
    }
    if (direct && !configured) {
      allowDirect(source);
    } else if (!direct && req.origin() != null) {
      allowOrigin(req.origin());
    }
    Path mnt = mountPoint(req.path() != null ? req.path() : defaultPath(source));
    synchronized (this) {
      for (Mounted m : mounts.values()) {
        if (m.mount.mountPoint().equals(mnt)) {
          throw new MountException(MountException.Kind.CONFLICT, "path", mnt + " already holds mount " + m.id + " (" + m.source
              + ")");
        }
      }
      String id = "m" + ids.incrementAndGet();
      long requested = System.nanoTime();
      // A configured origin is opened once and kept for every mount of it: an S3 client costs tens of milliseconds to
      // build even in a warm JVM, most of a mount's ready time. A direct-mode source is an origin of its own.
      Origin origin = direct ? openOrigin(source, "source")
          : sharedOrigin(req.origin() != null ? req.origin() : config.getOrigin(), req.origin() != null ? "origin" : null);
      Origin owned = direct ? origin : null;
      ModelReader reader = null;
      LazyMount mount = null;
      try {
        ModelStore store = new ModelStore(origin);
        ModelSource.Resolved resolved = parsed.resolve(origin);
        Manifest manifest = resolved.manifest();
        String display = resolved.display();
        reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT
            .withParallelism(config.getParallelism()).withRecordProfile(configured));
        reader.onChunkFetched((ChunkRef c, long nanos) -> metrics.chunkFetched(nanos));
        peers.forModel(manifest.digest()).ifPresent(reader::usePeers);
        ModelReader r = reader;
        ColdStartLog.ColdStart cs = coldStarts.begin(source, id, () -> Map.of("read", r.bytesRead(),
            "read_from_cache", r.bytesFromCache(), "fetched_from_origin", r.bytesFetched()));
        Files.createDirectories(mnt);
        mount = LazyMount.mount(reader, mnt, MountOptions.DEFAULT.withPassthrough(config.isPassthrough())
            .withName(MountOptions.thawName(source,
            manifest.digest())));
        cs.mark("mounted");
        Mounted m = new Mounted(id, source, display, origin, owned, store, manifest, reader, mount, cs);
        MountInfo view = m.view(); // a mount that cannot even be shown is not registered
        mounts.put(id, m);
        onMount.forEach(Runnable::run);
        reader.firstRead().thenAccept(at -> cs.mark("first_byte", at));
        if (!prefetch.equals("off")) {
          // off the request: looking up the profile is a request to the origin the caller need not wait for
          String what = prefetch.equals("all") ? "all" : "profile";
          m.prefetch = what + ": starting";
          Thread.ofVirtual().name("thaw-prefetch-start-" + id).start(() -> {
            try {
              startPrefetch(m, prefetch);
            } catch (RuntimeException e) {
              m.prefetch = what + ": failed: " + e.getMessage();
              LOG.log(Level.WARNING, "event=prefetch_failed id=" + id + " cause=" + e);
            }
          });
        }
        LOG.info(() -> "event=mounted id=" + id + " source=" + display + " at=" + mnt + " ms="
            + (System.nanoTime() - requested) / 1_000_000);
        return view;
      } catch (MountException e) {
        mounts.remove(id); // a mount that failed is never left registered
        closeQuietly(mount, reader, owned);
        throw e;
      } catch (FileNotFoundException | NoSuchFileException e) {
        mounts.remove(id); // a mount that failed is never left registered
        closeQuietly(mount, reader, owned);
        throw new MountException(MountException.Kind.NOT_FOUND, "source", "no model " + source + " at " + origin.uri() + ": "
            + e.getMessage(), e);
      } catch (OriginException e) {
        mounts.remove(id); // a mount that failed is never left registered
        closeQuietly(mount, reader, owned);
        if (e.isNotFound()) {
          throw new MountException(MountException.Kind.NOT_FOUND, "source", "no model " + source + " at " + origin.uri() + ": "
              + e.getMessage(), e);
        }
        throw new MountException(MountException.Kind.ORIGIN_FAILED, null, "the origin failed: " + e.getMessage(), e);
      } catch (IOException | RuntimeException e) {
        mounts.remove(id); // a mount that failed is never left registered
        closeQuietly(mount, reader, owned);
        throw new MountException(MountException.Kind.FAILED, null, "could not mount " + source + " at " + mnt
            + ": " + e.getMessage(), e);
      }
    }
  }

  /** Runs {@code listener} after each new mount (a cluster member tells the others at once what this node fetches). */
  public void onMount(Runnable listener) {
    onMount.add(listener);
  }

  /** Every mount, oldest first; one that cannot be shown says why instead of failing the list. */
  public List<Listed> list() {
    return sorted().stream().map(MountService::viewOrBroken).toList();
  }

  /** The mounts that can be shown, oldest first: what the cluster registers. */
  public List<MountInfo> mounted() {
    return list().stream().filter(MountInfo.class::isInstance).map(MountInfo.class::cast).toList();
  }

  private List<Mounted> sorted() {
    List<Mounted> all = new ArrayList<>(mounts.values());
    all.sort(java.util.Comparator.comparing((Mounted m) -> m.createdAt).thenComparing(m -> m.id));
    return all;
  }

  private static Listed viewOrBroken(Mounted m) {
    try {
      return m.view();
    } catch (RuntimeException e) {
      return new BrokenMount(m.id, m.source, m.mount.mountPoint().toString(), "cannot be shown: " + e);
    }
  }

  public MountInfo get(String id) {
    return find(id).view();
  }

  /** Unmounts; what it read stays in the cache. */
  public void unmount(String id) {
    Mounted m = mounts.remove(id);
    if (m == null) {
      throw new MountException(MountException.Kind.NOT_FOUND, "id", "no mount " + id);
    }
    close(m);
  }

  /** Starts fetching the mount's recorded access profile ({@code profile}) or every chunk ({@code all}). */
  public MountInfo prefetch(String id, String mode) {
    Mounted m = find(id);
    String how = mode == null ? "all" : mode;
    if (!how.equals("all") && !how.equals("profile")) {
      throw MountException.invalid("mode", "mode is profile or all, not " + how);
    }
    if (how.equals("profile") && m.manifest.isDirect()) {
      throw MountException.invalid("mode", "a direct-mode mount has no stored profile; use all");
    }
    String started = startPrefetch(m, how.equals("profile") ? "auto" : "all");
    if (started.equals("none")) {
      throw new MountException(MountException.Kind.NOT_FOUND, "mode", "model " + m.source + " has no recorded access profile"
          + " (record one with thaw mount --record-profile, or prefetch all)");
    }
    return m.view();
  }

  /** The chunk cache: where, how full, how often it served a read. */
  public Map<String, Object> cacheView() {
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("directory", cache.directory().toString());
    v.put("used_bytes", cache.usedBytes());
    v.put("capacity_bytes", cache.maxBytes());
    v.put("chunks", cache.chunkCount());
    v.put("evictions", cache.evictions());
    v.put("hit_ratio", hitRatio());
    return v;
  }

  /** The one chunk cache every mount reads through (what the peer endpoint serves and the plan's prefetches fill). */
  public ChunkCache cache() {
    return cache;
  }

  /**
   * Fetches the chunk with {@code key} into the cache for a peer, through the mount whose model has it: false when no
   * mount's model has such a chunk. Waits at most {@code timeout}.
   */
  @Override
  public boolean fetchOwned(String key, Duration timeout) throws Exception {
    for (Mounted m : mounts.values()) {
      Optional<ChunkRef> c = m.reader.chunk(key);
      if (c.isPresent()) {
        m.reader.fetchNow(c.get()).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        return true;
      }
    }
    return false;
  }

  int count() {
    return mounts.size();
  }

  /** The mount whose mount point holds {@code path}, if any. */
  Optional<String> mountHolding(Path path) {
    Path p = path.toAbsolutePath().normalize();
    return mounts.values().stream().filter(m -> p.startsWith(m.mount.mountPoint())).map(m -> m.id).findFirst();
  }

  /** Mount {@code id} as a Triton repository named {@code given}: its reader, mount point and recorded profile. */
  TritonRepositories.Repository served(String id, String given) {
    Mounted m = find(id);
    return new TritonRepositories.Repository(given, m.mount.mountPoint(), m.reader,
        m.store.profile(m.manifest, cache.directory()));
  }

  /**
   * Saves {@code profile} for mount {@code id}'s model: at the origin for a pushed model, in the cache's directory for
   * a direct-mode one (its origin is the user's bucket). Returns where.
   */
  String saveProfile(String id, AccessProfile profile) throws IOException {
    Mounted m = find(id);
    return m.store.saveProfile(profile, cache.directory(), !m.manifest.isDirect());
  }

  Optional<ColdStartLog.ColdStart> coldStartOf(String mountId) {
    Mounted m = mounts.get(mountId);
    return m == null ? Optional.empty() : Optional.of(m.coldStart);
  }

  private Mounted find(String id) {
    Mounted m = mounts.get(id);
    if (m == null) {
      throw new MountException(MountException.Kind.NOT_FOUND, "id", "no mount " + id);
    }
    return m;
  }

  /** Mounts go under the mount root: a relative path of plain names, no {@code ..}, no symbolic link on the way. */
  private Path mountPoint(String path) {
    if (path.isBlank()) {
      throw MountException.invalid("path", "path must not be empty");
    }
    Path rel;
    try {
      rel = Path.of(path);
    } catch (InvalidPathException e) {
      throw MountException.invalid("path", "path " + path + " is not a valid path: " + e.getMessage());
    }
    if (rel.isAbsolute()) {
      throw MountException.invalid("path", "path must be relative to the mount root " + root + ", not " + path);
    }
    for (Path part : rel) {
      if (part.toString().equals("..") || part.toString().equals(".")) {
        throw MountException.invalid("path", "path must not contain . or .. (" + path + ")");
      }
    }
    Path mnt = root.resolve(rel).normalize();
    if (!mnt.startsWith(root) || mnt.equals(root)) {
      throw MountException.invalid("path", "path " + path + " is outside the mount root " + root);
    }
    for (Path p = mnt; !p.equals(root); p = p.getParent()) {
      if (Files.isSymbolicLink(p)) {
        throw MountException.invalid("path", "path " + path + " passes through a symbolic link (" + p + ")");
      }
    }
    return mnt;
  }

  /** A request may name only the origins this sidecar was configured with. */
  private void allowOrigin(String uri) {
    List<String> allowed = new ArrayList<>(List.of(config.getOrigin()));
    allowed.addAll(config.getOrigins());
    if (allowed.stream().noneMatch(a -> sameUri(a, uri))) {
      throw new MountException(MountException.Kind.FORBIDDEN, "origin", "origin " + uri + " is not one this sidecar reads from"
          + " (thaw.origin, thaw.origins: " + allowed + ")");
    }
  }

  /**
   * A direct-mode source must lie under one of {@code thaw.direct-roots}: for {@code file://}, the real path (links
   * resolved) under the root's real path; for other schemes, the URI under the root's, with no {@code .} or
   * {@code ..} segment.
   */
  private void allowDirect(String source) {
    List<String> roots = config.getDirectRoots();
    String refusal = "direct-mode source " + source + " is not under a root this sidecar may mount (thaw.direct-roots: "
        + (roots.isEmpty() ? "none set" : roots) + ")";
    URI uri;
    try {
      uri = new URI(source);
    } catch (URISyntaxException e) {
      throw MountException.invalid("source", "source " + source + " is not a URI: " + e.getMessage());
    }
    String path = uri.getPath() == null ? "" : uri.getPath();
    for (String seg : path.split("/")) {
      if (seg.equals("..") || seg.equals(".")) {
        throw MountException.invalid("source", "source " + source + " must not contain . or .. segments");
      }
    }
    for (String root : roots) {
      if ("file".equals(uri.getScheme()) && root.startsWith("file:")) {
        try {
          Path real = Path.of(uri).toRealPath();
          Path rootReal = Path.of(URI.create(root)).toRealPath();
          if (real.startsWith(rootReal)) {
            return;
          }
        } catch (IOException | IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
          // a root or source that does not exist allows nothing
        }
      } else if (!"file".equals(uri.getScheme())) {
        String r = root.endsWith("/") ? root : root + "/";
        String s = source.endsWith("/") ? source : source + "/";
        if (s.startsWith(r)) {
          return;
        }
      }
    }
    throw new MountException(MountException.Kind.FORBIDDEN, "source", refusal);
  }

  /** Two origin URIs naming the same place: equal but for a trailing slash. */
  private static boolean sameUri(String a, String b) {
    return a.replaceAll("/+$", "").equals(b.replaceAll("/+$", ""));
  }

  private static String defaultPath(String source) {
    String s = source;
    int slash = s.replaceAll("/+$", "").lastIndexOf('/');
    if (slash >= 0) {
      s = s.replaceAll("/+$", "").substring(slash + 1);
    }
    s = SAFE_NAME.matcher(s.replace(':', '-')).replaceAll("_");
    return s.isEmpty() || s.equals(".") || s.equals("..") ? "model" : s;
  }

  private final ConcurrentHashMap<String, Origin> sharedOrigins = new ConcurrentHashMap<>();

  /** The configured origin at {@code uri}, opened at its first mount and closed with the service. */
  private Origin sharedOrigin(String uri, String field) {
    Origin o = sharedOrigins.get(uri);
    if (o == null) {
      Origin opened = openOrigin(uri, field); // outside the map's lock: opening may take a while
      o = sharedOrigins.putIfAbsent(uri, opened);
      if (o == null) {
        o = opened;
      } else {
        opened.close();
      }
    }
    return o;
  }

  private static Origin openOrigin(String uri, String field) {
    try {
      return Origins.open(uri);
    } catch (RuntimeException e) {
      throw new MountException(field == null ? MountException.Kind.FAILED : MountException.Kind.INVALID, field,
          "cannot open origin " + uri + ": " + e.getMessage(), e);
    }
  }

  private String startPrefetch(Mounted m, String how) {
    CompletableFuture<Void> f;
    String what;
    if (how.equals("all")) {
      f = m.reader.fillAll();
      what = "all";
    } else {
      Optional<AccessProfile> profile = m.manifest.isDirect() ? Optional.empty()
          : m.store.profile(m.manifest, cache.directory());
      if (profile.isEmpty()) {
        m.prefetch = "none";
        return "none";
      }
      f = m.reader.prefetch(profile.get());
      what = "profile";
    }
    m.prefetch = what + ": running";
    f.whenComplete((ok, e) -> m.prefetch = what + (e == null ? ": done" : ": failed: " + e.getMessage()));
    return what;
  }

  private enum Tally { READ, FROM_CACHE, ORIGIN, PEER }

  private long total(Tally t) {
    long ended = switch (t) {
      case READ -> endedRead.get();
      case FROM_CACHE -> endedFromCache.get();
      case ORIGIN -> endedFromOrigin.get();
      case PEER -> endedFromPeers.get();
    };
    return ended + mounts.values().stream().mapToLong(m -> switch (t) {
      case READ -> m.reader.bytesRead();
      case FROM_CACHE -> m.reader.bytesFromCache();
      case ORIGIN -> m.reader.bytesFetched();
      case PEER -> m.reader.bytesFromPeers();
    }).sum();
  }

  private double hitRatio() {
    long read = total(Tally.READ);
    return read == 0 ? 0 : total(Tally.FROM_CACHE) / (double) read;
  }

  private long cachedBytes(Manifest manifest) {
    long n = 0;
    Set<String> seen = new HashSet<>();
    for (var e : manifest.entries()) {
      if (e instanceof FileEntry f) {
        for (ChunkRef c : f.chunks()) {
          if (seen.add(c.key()) && cache.contains(c.key())) {
            n += c.length();
          }
        }
      }
    }
    return n;
  }

  private void close(Mounted m) {
    endedRead.addAndGet(m.reader.bytesRead());
    endedFromCache.addAndGet(m.reader.bytesFromCache());
    endedFromOrigin.addAndGet(m.reader.bytesFetched());
    endedFromPeers.addAndGet(m.reader.bytesFromPeers());
    closeQuietly(m.mount, m.reader, m.ownedOrigin);
    LOG.info(() -> "event=unmounted id=" + m.id + " at=" + m.mount.mountPoint());
  }

  private static void closeQuietly(LazyMount mount, ModelReader reader, Origin origin) {
    if (mount != null) {
      try {
        mount.close();
      } catch (IOException e) {
        LOG.log(Level.WARNING, "event=unmount_failed at=" + mount.mountPoint() + " cause=" + e.getMessage());
      }
    }
    if (reader != null) {
      reader.close();
    }
    if (origin != null) {
      origin.close();
    }
  }

  private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

  /** Unmounts everything and lets go of the cache; once, however often called. */
  @PreDestroy
  @Override
  public void close() throws IOException {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    for (String id : List.copyOf(mounts.keySet())) {
      Mounted m = mounts.remove(id);
      if (m != null) {
        close(m);
      }
    }
    sharedOrigins.values().forEach(Origin::close);
    sharedOrigins.clear();
    cache.close();
  }
}
