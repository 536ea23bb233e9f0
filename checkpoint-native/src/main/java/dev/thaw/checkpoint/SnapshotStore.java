package dev.thaw.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.thaw.checkpoint.SnapshotService.FetchProgress;
import dev.thaw.checkpoint.SnapshotService.Found;
import dev.thaw.checkpoint.SnapshotService.Local;
import dev.thaw.checkpoint.SnapshotService.Pushed;
import dev.thaw.store.AccessProfile;
import dev.thaw.store.ChunkCache;
import dev.thaw.store.FileEntry;
import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelReader;
import dev.thaw.store.ModelStore;
import dev.thaw.store.PushProgress;
import dev.thaw.store.Pusher;
import dev.thaw.store.ReaderOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * Snapshots by name, on this node and in the store.
 *
 * <p>On this node a snapshot is a directory {@code ROOT/NAME/KEYTAG/} of CRIU images and {@code snapshot.json},
 * owner-only; KEYTAG is the start of its {@link SnapshotKey#digest()}, so one name holds one snapshot per kind of node.
 * Directories appear only complete: images are dumped or fetched into a hidden sibling and renamed into place.
 *
 * <p>In the store a snapshot is a manifest tagged {@code snapshots/NAME:KEYTAG} holding {@code key.json} and
 * {@code images/}: every file of the directory, each sealed by {@link SnapshotCipher} unless pushed with encryption
 * off. {@code key.json} is the snapshot's seal: its name, its key (the command line replaced by its digest), a random
 * id of the push, and each image file's size and SHA-256, authenticated together with the tag by an HMAC under the
 * snapshot key. Each image file is sealed bound to that id and its own name. So nothing an origin writer can do
 * without the key (edit the record, swap files, put back a file of an older push, move a snapshot to another name or
 * tag) gets past {@link #find}: it is refused, naming why, before anything runs. A snapshot pushed unsealed carries no
 * such proof and is refused unless this store was opened with {@code allowUnsealed} (an origin the caller trusts).
 *
 * <p>Restoring finds the tag whose key matches this node, fetches the images through a chunk cache of its own (every
 * chunk checked against its hash, refetched when corrupt; dropped afterwards) and decrypts them as they arrive.
 */
final class SnapshotStore {
  static final String KEY_FILE = "key.json";
  static final String IMAGES = "images/";
  private static final int KEY_TAG_HEX = 32;
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  /** Reads {@code key.json} as written: a member given twice is an error, not the last one winning. */
  private static final ObjectMapper KEY_JSON = new ObjectMapper()
      .enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
  /** Written by CRIU at restore: never part of a snapshot. */
  private static final List<String> LOCAL_ONLY = List.of("restore.log", "restored.pid");
  private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

  private final Path root;
  private final ModelStore store;
  private final Optional<SnapshotCipher> cipher;
  private final boolean allowUnsealed;
  private final ReaderOptions readerOptions;

  /**
   * @param root where this node keeps snapshots (created owner-only)
   * @param store the origin snapshots are pushed to and fetched from
   * @param cipher seals images before they are pushed and opens them when fetched; empty: images travel in clear
   * @param allowUnsealed also fetch snapshots the origin holds unsealed (nothing proves who wrote them: their images
   *     and command are trusted as the origin is)
   */
  SnapshotStore(Path root, ModelStore store, Optional<SnapshotCipher> cipher, int parallelism,
      boolean allowUnsealed) throws IOException {
    this.root = root;
    this.store = store;
    this.cipher = cipher;
    this.allowUnsealed = allowUnsealed;
    this.readerOptions = new ReaderOptions(parallelism, 8, false);
    createOwnerOnly(root);
  }

  /**
   * What {@code key.json} holds. Sealed: {@code snapshotId}, {@code files} (each image file's plaintext size and
   * SHA-256, by name) and {@code mac} (hex HMAC over {@link #authenticated}); all three null when pushed unsealed.
   */
  record KeyFile(String name, Map<String, String> key, boolean encrypted, String snapshotId,
      Map<String, SnapshotCipher.Digest> files, String mac) {
    /**
     * The bytes {@code mac} authenticates, for the tag the record is read from: each field length-prefixed and maps in
     * key order, so no two records (or tags) share them, however the JSON was spaced or ordered.
     */
    byte[] authenticated(ModelName tag) {
      var bytes = new java.io.ByteArrayOutputStream();
      var out = new java.io.DataOutputStream(bytes);
      try {
        field(out, "thaw snapshot seal v2");
        field(out, tag.toString());
        field(out, name);
        field(out, Boolean.toString(encrypted));
        field(out, snapshotId);
        var k = new java.util.TreeMap<>(key);
        out.writeInt(k.size());
        for (var e : k.entrySet()) {
          field(out, e.getKey());
          field(out, e.getValue());
        }
        var f = new java.util.TreeMap<>(files);
        out.writeInt(f.size());
        for (var e : f.entrySet()) {
          field(out, e.getKey());
          out.writeLong(e.getValue().size());
          field(out, e.getValue().sha256());
        }
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e); // a byte array does not fail
      }
      return bytes.toByteArray();
    }

    KeyFile withMac(String hex) {
      return new KeyFile(name, key, encrypted, snapshotId, files, hex);
    }

    private static void field(java.io.DataOutputStream out, String s) throws IOException {
      if (s == null) {
        out.writeInt(-1);
        return;
      }
      byte[] b = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
      out.writeInt(b.length);
      out.write(b);
    }

    /** Refuses a record with holes that would otherwise fail later, far from where it was read. */
    KeyFile {
      if (name == null || key == null || key.containsValue(null)) {
        throw new IllegalArgumentException("name and every field of key are required");
      }
      if (files != null && files.values().stream().anyMatch(d -> d == null || d.sha256() == null)) {
        throw new IllegalArgumentException("every listed file needs its size and sha256");
      }
    }
  }

  Path root() {
    return root;
  }

  /** A new, empty, owner-only directory to dump a snapshot of {@code name} into; see {@link #keep}. */
  Path newDumpDirectory(String name) throws IOException {
    createOwnerOnly(nameDir(name));
    Path dir = nameDir(name).resolve(".dump-" + System.nanoTime());
    return dir;
  }

  /** Deletes a dump directory that failed: no partial images are kept. */
  void discard(Path dumped) throws IOException {
    deleteTree(dumped);
  }

  /** Moves a finished dump into place as this node's snapshot of {@code name} for its key; returns where. */
  Path keep(String name, Path dumped) throws IOException {
    SnapshotKey key = SnapshotMetadata.read(dumped).snapshotKey();
    return replace(dumped, nameDir(name).resolve(keyTag(key)));
  }

  /**
   * Pushes the snapshot in {@code images} to the store under {@code snapshots/NAME:KEYTAG}, sealed when this store has a
   * cipher. The tag appears only once every chunk is stored.
   */
  Pushed push(String name, Path images, int chunkSize, int concurrency, PushProgress progress)
      throws IOException {
    SnapshotMetadata m = SnapshotMetadata.read(images);
    SnapshotKey key = m.snapshotKey();
    ModelName tag = tag(name, key);
    Path staging = nameDir(name).resolve(".push-" + System.nanoTime());
    createOwnerOnly(staging);
    try {
      Path out = staging.resolve("images");
      createOwnerOnly(out);
      String snapshotId = cipher.isPresent() ? java.util.HexFormat.of().formatHex(randomBytes(16)) : null;
      Map<String, SnapshotCipher.Digest> digests = new java.util.TreeMap<>();
      try (var files = Files.list(images)) {
        for (Path f : files.sorted().toList()) {
          String n = f.getFileName().toString();
          if (!Files.isRegularFile(f) || LOCAL_ONLY.contains(n)) {
            continue;
          }
          if (cipher.isPresent()) {
            digests.put(n, cipher.get().encrypt(f, out.resolve(n), new SnapshotCipher.Binding(snapshotId, n)));
          } else {
            Files.createLink(out.resolve(n), f); // same file system: no copy
          }
        }
      }
      KeyFile kf = new KeyFile(name, key.withCommandDigest().fields(), cipher.isPresent(), snapshotId,
          cipher.isPresent() ? digests : null, null);
      if (cipher.isPresent()) {
        kf = kf.withMac(java.util.HexFormat.of().formatHex(cipher.get().mac(kf.authenticated(tag))));
      }
      JSON.writeValue(staging.resolve(KEY_FILE).toFile(), kf);
      Pusher.Result r = new Pusher(store.origin(), chunkSize, concurrency, progress).push(staging, tag);
      return new Pushed(tag, r, cipher.isPresent(), store.origin().uri());
    } finally {
      deleteTree(staging);
    }
  }

  /**
   * No snapshot of a name can be restored here: none matches this node or can be trusted, or its images could not be
   * fetched. {@link #metadata} is one that could not be used, when one was read and authenticated.
   */
  static final class UnavailableException extends IOException {
    private final transient SnapshotMetadata metadata;

    UnavailableException(String message, SnapshotMetadata metadata, Throwable cause) {
      super(message, cause);
      this.metadata = metadata;
    }

    /**
     * A snapshot of the name that could not be used, whose record is authenticated (kept on this node, or sealed with
     * this node's key, or unsealed when the store allows that): its command is one a cold boot may run. Null when
     * there is none such; never metadata read in clear from an origin that is not trusted.
     */
    SnapshotMetadata metadata() {
      return metadata;
    }
  }

  /**
   * Finds the snapshot of {@code name} whose key matches {@code here} in {@link SnapshotKey#NODE_FIELDS} (and in the
   * model digest, when {@code modelDigest} is not null): on this node first, unless {@code fromOrigin}, then in the
   * store, whose images are then fetched here.
   *
   * @param progress told of the bytes of images written as they are fetched
   * @throws UnavailableException naming, for each snapshot of the name, the fields that differ
   */
  Found find(String name, SnapshotKey here, String modelDigest, boolean fromOrigin, FetchProgress progress)
      throws IOException {
    List<String> compared = new ArrayList<>(SnapshotKey.NODE_FIELDS);
    if (modelDigest != null) {
      compared.add(SnapshotKey.MODEL);
    }
    SnapshotKey wanted = withModel(here, modelDigest);
    List<String> refusals = new ArrayList<>();
    SnapshotMetadata refused = null;
    if (!fromOrigin) {
      for (Path dir : localSnapshots(name)) {
        SnapshotMetadata m;
        try {
          m = SnapshotMetadata.read(dir);
        } catch (IOException | RuntimeException e) {
          continue; // damaged: the store's copy, if any, is tried next
        }
        String differ = m.snapshotKey().describeMismatches(wanted, compared);
        if (differ.isEmpty()) {
          return new Found(dir, m, dir.toString(), 0, Duration.ZERO);
        }
        refusals.add(dir + ": " + differ);
        refused = refused == null ? m : refused;
      }
    }
    List<ModelName> tags = new ArrayList<>();
    for (ModelName t : store.tags()) {
      if (t.name().equals(storeName(name))) {
        tags.add(t);
      }
    }
    // Chunks pass through a cache of their own, owner-only (they may be process memory in clear, pushed with
    // --no-encrypt) and dropped once the images are written: the images are the copy this node keeps.
    Path scratch = root.resolve(".chunks-" + System.nanoTime());
    createOwnerOnly(scratch);
    try (ChunkCache cache = ChunkCache.open(scratch, ChunkCache.defaultMaxBytes(root))) {
      for (ModelName t : tags) {
        Attempt a = tryTag(name, t, cache, wanted, compared, progress);
        if (a.found() != null) {
          return a.found();
        }
        refusals.add(a.refusal());
        refused = refused == null ? a.refused() : refused;
      }
    } finally {
      deleteTree(scratch);
    }
    if (refusals.isEmpty()) {
      throw new UnavailableException("no snapshot named " + name + (fromOrigin ? "" : " in " + nameDir(name) + " or")
          + " at " + store.origin().uri(), null, null);
    }
    throw new UnavailableException("no snapshot named " + name + " matches this node: " + String.join("; ", refusals),
        refused, null);
  }

  /** What trying one tag gave: the fetched snapshot, or why it does not match (and its metadata, if readable). */
  private record Attempt(Found found, String refusal, SnapshotMetadata refused) {}

  private Attempt tryTag(String name, ModelName t, ChunkCache cache, SnapshotKey wanted, List<String> compared,
      FetchProgress progress) throws IOException {
    Manifest manifest = store.resolve(t);
    String where = t + " at " + store.origin().uri() + ": ";
    try (ModelReader reader = ModelReader.open(manifest, store.origin(), cache, readerOptions)) {
      KeyFile kf;
      SnapshotKey key;
      try {
        kf = KEY_JSON.readValue(readAll(reader, KEY_FILE), KeyFile.class);
        key = new SnapshotKey(kf.key());
      } catch (IOException | RuntimeException e) {
        return new Attempt(null, where + KEY_FILE + " cannot be read (" + e.getMessage() + "); refused", null);
      }
      String untrusted = untrusted(name, t, kf, manifest);
      if (untrusted != null) {
        return new Attempt(null, where + untrusted, null);
      }
      String differ = key.describeMismatches(wanted, compared);
      if (!differ.isEmpty()) {
        return new Attempt(null, where + differ, readMetadata(reader, kf, t));
      }
      return new Attempt(fetch(name, t, reader, kf, progress), null, null);
    }
  }

  /**
   * Why the snapshot at {@code tag} cannot be trusted, or null when it can: sealed, its record authenticates for this
   * tag under this node's key, and the manifest holds exactly the image files the record lists. Unsealed snapshots are
   * trusted only when this store allows them.
   */
  private String untrusted(String name, ModelName tag, KeyFile kf, Manifest manifest) {
    if (!kf.encrypted()) {
      return allowUnsealed ? null : "not sealed (pushed with encryption off, or written by someone else at the origin):"
          + " nothing proves who wrote its images and command; refused. Restore it only from an origin you trust,"
          + " with --allow-unsealed";
    }
    if (cipher.isEmpty()) {
      return "sealed, and no snapshot key is configured to open and authenticate it";
    }
    if (kf.snapshotId() == null || kf.files() == null || kf.mac() == null) {
      return KEY_FILE + " says sealed but carries no seal (no snapshotId, files or mac: an older Thaw, or edited at"
          + " the origin); refused";
    }
    if (!name.equals(kf.name())) {
      return KEY_FILE + " names the snapshot " + kf.name() + ", not " + name + " (moved at the origin); refused";
    }
    byte[] mac;
    try {
      mac = java.util.HexFormat.of().parseHex(kf.mac());
    } catch (IllegalArgumentException e) {
      mac = null;
    }
    if (!cipher.get().verify(kf.authenticated(tag), mac)) {
      return KEY_FILE + " does not authenticate with this node's snapshot key (sealed with another key, or edited or"
          + " moved from another tag at the origin); refused";
    }
    java.util.Set<String> listed = new java.util.TreeSet<>(kf.files().keySet());
    java.util.Set<String> present = new java.util.TreeSet<>();
    for (FileEntry f : imageFiles(manifest)) {
      present.add(f.path().substring(IMAGES.length()));
    }
    if (!listed.equals(present)) {
      java.util.Set<String> extra = new java.util.TreeSet<>(present);
      extra.removeAll(listed);
      listed.removeAll(present);
      return "its manifest does not hold the image files " + KEY_FILE + " lists (" + (extra.isEmpty() ? ""
          : "not listed: " + extra + (listed.isEmpty() ? "" : "; ")) + (listed.isEmpty() ? "" : "missing: " + listed)
          + "); refused";
    }
    return null;
  }

  /** The image files of a snapshot's manifest (those directly under {@code images/}), by path. */
  private static List<FileEntry> imageFiles(Manifest manifest) {
    List<FileEntry> files = new ArrayList<>();
    for (FileEntry f : manifest.files()) {
      if (f.path().startsWith(IMAGES) && f.path().indexOf('/', IMAGES.length()) < 0) {
        files.add(f);
      }
    }
    files.sort(Comparator.comparing(FileEntry::path));
    return files;
  }

  private Found fetch(String name, ModelName tag, ModelReader reader, KeyFile kf, FetchProgress progress)
      throws IOException {
    long start = System.nanoTime();
    createOwnerOnly(nameDir(name));
    Path dir = nameDir(name).resolve(".fetch-" + System.nanoTime());
    createOwnerOnly(dir);
    // Fill the cache in parallel (in the order of a recorded profile, if there is one); the sequential reads below
    // wait only for chunks not there yet, which then go first.
    Optional<AccessProfile> profile = store.profile(reader.manifest(), null);
    CompletableFuture<Void> fill = profile.isPresent()
        ? CompletableFuture.allOf(reader.prefetch(profile.get()), reader.fillAll()) : reader.fillAll();
    try {
      List<FileEntry> files = imageFiles(reader.manifest());
      progress.started(files.stream().mapToLong(FileEntry::size).sum(), store.origin().uri());
      for (FileEntry f : files) {
        String n = f.path().substring(IMAGES.length());
        Path dst = dir.resolve(n);
        try (ModelReader.ModelFile in = reader.open(f.path())) {
          if (kf.encrypted()) {
            SnapshotCipher.Digest d = cipher.get().decrypt(new SnapshotCipher.Source() {
              @Override
              public long size() {
                return in.size();
              }

              @Override
              public int read(long position, ByteBuffer b) throws IOException {
                return in.read(position, b);
              }
            }, tag + " " + f.path(), dst, new SnapshotCipher.Binding(kf.snapshotId(), n));
            checkListed(kf, n, d, tag);
            progress.wrote(d.size());
          } else {
            copy(in, dst, progress);
          }
        }
      }
      fill.join();
      SnapshotMetadata m = SnapshotMetadata.read(dir);
      if (!m.snapshotKey().withCommandDigest().equals(new SnapshotKey(kf.key()).withCommandDigest())) {
        throw new IOException(Snapshots.METADATA + " records another key than " + KEY_FILE + " of " + tag);
      }
      Path kept = replace(dir, nameDir(name).resolve(tag.tag()));
      return new Found(kept, m, tag + " at " + store.origin().uri(), reader.bytesFetched(),
          Duration.ofNanos(System.nanoTime() - start));
    } catch (IOException | RuntimeException e) {
      fill.cancel(true);
      deleteTree(dir); // never leave half a snapshot
      Throwable cause = e instanceof java.util.concurrent.CompletionException ce && ce.getCause() != null
          ? ce.getCause() : e;
      throw new UnavailableException("the images of snapshot " + tag + " could not be fetched: " + cause.getMessage(),
          readMetadata(reader, kf, tag), cause);
    }
  }

  /** A decrypted file must be the one {@code key.json} lists: its size and digest. */
  private static void checkListed(KeyFile kf, String file, SnapshotCipher.Digest got, ModelName tag) throws IOException {
    SnapshotCipher.Digest listed = kf.files().get(file);
    if (!got.equals(listed)) {
      throw new IOException(IMAGES + file + " of " + tag + " is not the file " + KEY_FILE + " lists (" + got.size()
          + " bytes, sha256 " + got.sha256() + "; listed: " + listed + ")");
    }
  }

  /** The metadata of a snapshot whose record {@link #untrusted} accepted; null when it cannot be read or opened. */
  private SnapshotMetadata readMetadata(ModelReader reader, KeyFile kf, ModelName tag) {
    try {
      byte[] raw = readAll(reader, IMAGES + Snapshots.METADATA);
      if (kf.encrypted()) {
        if (cipher.isEmpty()) {
          return null;
        }
        Path tmp = Files.createTempFile(root, ".metadata", ".json");
        Files.delete(tmp);
        try {
          SnapshotCipher.Digest d = cipher.get().decrypt(new SnapshotCipher.Source() {
            @Override
            public long size() {
              return raw.length;
            }

            @Override
            public int read(long position, ByteBuffer b) {
              if (position >= raw.length) {
                return -1;
              }
              int n = (int) Math.min(b.remaining(), raw.length - position);
              b.put(raw, (int) position, n);
              return n;
            }
          }, Snapshots.METADATA, tmp, new SnapshotCipher.Binding(kf.snapshotId(), Snapshots.METADATA));
          checkListed(kf, Snapshots.METADATA, d, tag);
          return SnapshotMetadata.parse(Files.readAllBytes(tmp));
        } finally {
          Files.deleteIfExists(tmp);
        }
      }
      return SnapshotMetadata.parse(raw);
    } catch (IOException | RuntimeException e) {
      return null; // only used to say what a cold boot would run
    }
  }

  private static byte[] readAll(ModelReader reader, String path) throws IOException {
    try (ModelReader.ModelFile f = reader.open(path)) {
      if (f.size() > (64 << 20)) {
        throw new IOException(path + " is too large to be snapshot metadata");
      }
      ByteBuffer b = ByteBuffer.allocate((int) f.size());
      while (b.hasRemaining() && f.read(b.position(), b) >= 0) {
        // read until full
      }
      return b.array();
    }
  }

  private static void copy(ModelReader.ModelFile in, Path dst, FetchProgress progress) throws IOException {
    try (FileChannel out = FileChannel.open(dst, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocateDirect(4 << 20);
      long pos = 0;
      while (pos < in.size()) {
        b.clear();
        int n = in.read(pos, b);
        if (n < 0) {
          break;
        }
        b.flip();
        while (b.hasRemaining()) {
          out.write(b);
        }
        pos += n;
        progress.wrote(n);
      }
    }
  }

  /** Every complete snapshot kept under {@code root} (one with its metadata), by name, newest first within a name. */
  static List<Local> listLocal(Path root) throws IOException {
    if (!Files.isDirectory(root)) {
      return List.of();
    }
    List<Local> out = new java.util.ArrayList<>();
    try (var s = Files.walk(root, 6)) {
      for (Path meta : s.filter(p -> p.getFileName().toString().equals(Snapshots.METADATA)).toList()) {
        Path images = meta.getParent();
        Path rel = root.relativize(images);
        if (rel.getNameCount() < 2 || rel.toString().contains("/.") || rel.toString().startsWith(".")) {
          continue; // a dump in progress or not in the NAME/KEYTAG layout
        }
        long bytes;
        try (var files = Files.walk(images)) {
          bytes = files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        }
        out.add(new Local(rel.getParent().toString(), rel.getFileName().toString(), images, bytes,
            Files.getLastModifiedTime(meta).toInstant()));
      }
    }
    out.sort(Comparator.comparing(Local::name).thenComparing(Comparator.comparing(Local::taken).reversed()));
    return out;
  }

  /** The snapshots of {@code name} kept on this node, newest first. */
  List<Path> localSnapshots(String name) throws IOException {
    Path dir = nameDir(name);
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (var s = Files.list(dir)) {
      return s.filter(p -> !p.getFileName().toString().startsWith(".") && Files.isRegularFile(p.resolve(Snapshots.METADATA)))
          .sorted(Comparator.comparing((Path p) -> p.resolve(Snapshots.METADATA).toFile().lastModified()).reversed())
          .toList();
    }
  }

  /** Removes this node's copies of {@code name}; the store's are kept. */
  void forgetLocal(String name) throws IOException {
    deleteTree(nameDir(name));
  }

  static ModelName tag(String name, SnapshotKey key) {
    return new ModelName(storeName(name), keyTag(key));
  }

  static String storeName(String name) {
    return "snapshots/" + name;
  }

  static String keyTag(SnapshotKey key) {
    return key.digest().substring("sha256:".length(), "sha256:".length() + KEY_TAG_HEX);
  }

  private Path nameDir(String name) {
    ModelName.parse(storeName(name) + ":x"); // refuses names that could escape the root
    return root.resolve(name);
  }

  private static byte[] randomBytes(int n) {
    byte[] b = new byte[n];
    RANDOM.nextBytes(b);
    return b;
  }

  private static SnapshotKey withModel(SnapshotKey here, String modelDigest) {
    if (modelDigest == null) {
      return here;
    }
    Map<String, String> f = new LinkedHashMap<>(here.fields());
    f.put(SnapshotKey.MODEL, modelDigest);
    return new SnapshotKey(f);
  }

  /** Renames {@code from} to {@code to}, replacing what was there; {@code to} never holds a mix of both. */
  private static Path replace(Path from, Path to) throws IOException {
    Path old = null;
    if (Files.exists(to)) {
      old = to.resolveSibling(".old-" + System.nanoTime());
      Files.move(to, old, StandardCopyOption.ATOMIC_MOVE);
    }
    Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
    if (old != null) {
      deleteTree(old);
    }
    return to;
  }

  static void createOwnerOnly(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      Files.createDirectories(dir.getParent());
      try {
        Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
      } catch (java.nio.file.FileAlreadyExistsException raced) {
        // made meanwhile: set its permissions below
      }
    }
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    Files.walkFileTree(dir, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
        Files.delete(f);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
        Files.delete(d);
        return FileVisitResult.CONTINUE;
      }
    });
  }
}
