package dev.thaw.store;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A model's tree: files with their chunks, directories and symbolic links, the hash algorithm and chunk size.
 * The format is specified in docs/manifest.md. A manifest is immutable and named by its {@link #digest()}: the
 * SHA-256 of its canonical JSON (RFC 8785).
 *
 * <p>Every manifest is validated when it is parsed or built: an unknown version or hash, a path that is absolute
 * or holds "..", a duplicate path, a symlink that leaves the tree (followed link by link, as the kernel follows it
 * in a mount), chunk lengths that do not add up to the file size (in exact arithmetic), or more chunks in one file
 * than {@link #MAX_CHUNKS_PER_FILE} are refused with a {@link ManifestException} that names the entry.
 */
public final class Manifest {
  /** The format version this code writes when a manifest has block hashes; without them it writes version 1. */
  public static final int VERSION = 2;
  /** The block a version 2 manifest hashes by default: a read waits for at most this much of its chunk. */
  public static final int DEFAULT_BLOCK_SIZE = 1 << 20;
  /** The smallest block size a manifest may declare. */
  static final int MIN_BLOCK_SIZE = 4096;
  /**
   * The most blocks whose hashes one file may list (1 TiB at 1 MiB blocks), so its {@code blocks} string fits the
   * reader's JSON limit; a larger file is listed without them and its reads wait for whole chunks.
   */
  public static final int MAX_BLOCKS_PER_FILE = 1 << 20;
  /** The largest chunk a manifest may declare. */
  public static final int MAX_CHUNK_SIZE = 256 << 20;
  /**
   * The most chunks one file may have: 8 TiB at the default 8 MiB chunks. Writers refuse more before uploading
   * anything, and the reader's JSON limits are derived from it, so whatever a push writes is readable.
   */
  public static final int MAX_CHUNKS_PER_FILE = 1 << 20;
  /** The longest JSON string a reader accepts: the base64 chunk list of a file of {@link #MAX_CHUNKS_PER_FILE}. */
  static final int MAX_JSON_STRING = 4 * (int) ((MAX_CHUNKS_PER_FILE * (long) Hashes.LENGTH + 2) / 3);
  /** Links followed in one resolution before it is taken for a loop: Linux's limit (MAXSYMLINKS). */
  static final int MAX_SYMLINK_HOPS = 40;

  static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
      .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(MAX_JSON_STRING).build())
      .build());

  private final int chunkSize;
  private final int blockSize; // 0: no block hashes (version 1)
  private final String directSource; // null for pushed manifests
  private final List<Entry> entries; // sorted by path
  private final Map<String, Entry> byPath;
  private final Map<String, List<Entry>> children;
  private volatile byte[] canonical;
  private volatile String digest;

  private Manifest(int chunkSize, int blockSize, String directSource, List<Entry> entries, byte[] canonical) {
    this.chunkSize = chunkSize;
    this.blockSize = blockSize;
    this.directSource = directSource;
    this.entries = List.copyOf(entries);
    this.canonical = canonical;
    Map<String, Entry> index = new HashMap<>(entries.size() * 2);
    Map<String, List<Entry>> kids = new HashMap<>();
    kids.put("", new ArrayList<>());
    for (Entry e : entries) {
      if (index.putIfAbsent(e.path(), e) != null) {
        throw new ManifestException("entry '" + e.path() + "': duplicate path");
      }
    }
    for (Entry e : entries) {
      String parent = parentOf(e.path());
      Entry p = index.get(parent);
      if (!parent.isEmpty() && p != null && !(p instanceof DirectoryEntry)) {
        throw new ManifestException("entry '" + e.path() + "': its parent '" + parent + "' is not a directory");
      }
      kids.computeIfAbsent(parent, k -> new ArrayList<>()).add(e);
      if (e instanceof DirectoryEntry) {
        kids.computeIfAbsent(e.path(), k -> new ArrayList<>());
      }
    }
    // Parents that are not listed are implicit directories.
    for (String dir : new ArrayList<>(kids.keySet())) {
      String d = dir;
      while (!d.isEmpty() && !index.containsKey(d)) {
        DirectoryEntry implicit = new DirectoryEntry(d, 0755);
        index.put(d, implicit);
        String parent = parentOf(d);
        kids.computeIfAbsent(parent, k -> new ArrayList<>()).add(implicit);
        d = parent;
      }
    }
    // An implicit directory may have stopped at a listed ancestor that is a file or a symlink.
    for (Map.Entry<String, List<Entry>> k : kids.entrySet()) {
      if (!k.getKey().isEmpty() && !(index.get(k.getKey()) instanceof DirectoryEntry)) {
        throw new ManifestException("entry '" + k.getValue().getFirst().path() + "': its ancestor '" + k.getKey()
            + "' is not a directory");
      }
    }
    for (Entry e : entries) {
      if (e instanceof SymlinkEntry s) {
        checkSymlink(s);
      }
    }
    for (Entry e : entries) {
      if (e instanceof SymlinkEntry s) {
        checkSymlinkChain(s, index);
      }
    }
    kids.replaceAll((k, v) -> Collections.unmodifiableList(v));
    this.byPath = index;
    this.children = kids;
  }

  /** Bytes per chunk (every chunk of a file but its last has this length). */
  public int chunkSize() {
    return chunkSize;
  }

  /** Bytes per hashed block of a chunk (version 2), or 0 when the manifest has no block hashes (version 1). */
  public int blockSize() {
    return blockSize;
  }

  /** The format version of this manifest: 2 when it lists block hashes, else 1. */
  public int version() {
    return blockSize > 0 ? 2 : 1;
  }

  public String hashAlgorithm() {
    return Hashes.ALGORITHM;
  }

  /** For a direct-mode manifest, the URI it was listed from; null for a pushed one. */
  public String directSource() {
    return directSource;
  }

  public boolean isDirect() {
    return directSource != null;
  }

  /** All listed entries, sorted by path (implicit parent directories are not listed). */
  public List<Entry> entries() {
    return entries;
  }

  /** The entry at {@code path} ("" is the root), or null. */
  public Entry entry(String path) {
    if (path.isEmpty()) {
      return new DirectoryEntry("", 0755);
    }
    return byPath.get(path);
  }

  /** The entries directly inside directory {@code path} ("" is the root). */
  public List<Entry> children(String path) {
    return children.getOrDefault(path, List.of());
  }

  /** Regular files, in path order. */
  public List<FileEntry> files() {
    List<FileEntry> files = new ArrayList<>();
    for (Entry e : entries) {
      if (e instanceof FileEntry f) {
        files.add(f);
      }
    }
    return files;
  }

  public long totalBytes() {
    long n = 0;
    for (Entry e : entries) {
      if (e instanceof FileEntry f) {
        n += f.size();
      }
    }
    return n;
  }

  /** The manifest's canonical JSON (RFC 8785), the bytes stored at the origin. */
  public byte[] canonicalBytes() {
    byte[] bytes = canonical;
    if (bytes == null) {
      bytes = CanonicalJson.write(toJson()).getBytes(StandardCharsets.UTF_8);
      canonical = bytes;
    }
    return bytes.clone();
  }

  /** "sha256:" followed by the hex SHA-256 of the canonical JSON. */
  public String digest() {
    String d = digest;
    if (d == null) {
      byte[] bytes = canonical;
      if (bytes == null) {
        bytes = canonicalBytes();
      }
      d = "sha256:" + Hashes.sha256Hex(bytes);
      digest = d;
    }
    return d;
  }

  /** The digest's hex part, used in origin object keys. */
  public String digestHex() {
    return digest().substring("sha256:".length());
  }

  private ObjectNode toJson() {
    JsonNodeFactory f = JsonNodeFactory.instance;
    ObjectNode root = f.objectNode();
    root.put("version", version());
    root.put("hash", Hashes.ALGORITHM);
    root.put("chunkSize", chunkSize);
    if (blockSize > 0) {
      root.put("blockSize", blockSize);
    }
    if (directSource != null) {
      root.put("direct", directSource);
    }
    ArrayNode list = root.putArray("entries");
    for (Entry e : entries) {
      ObjectNode n = list.addObject();
      n.put("path", e.path());
      switch (e) {
        case FileEntry file -> {
          n.put("type", "file");
          n.put("size", file.size());
          n.put("mode", file.mode());
          if (file.isDirect()) {
            n.put("object", file.objectKey());
            n.put("version", file.version());
          } else {
            n.put("chunks", file.encodedHashes());
            if (file.encodedBlocks() != null) {
              n.put("blocks", file.encodedBlocks());
            }
          }
          ArrayNode runs = n.putArray("lengths");
          long[] r = file.lengthRuns();
          for (int i = 0; i < r.length; i += 2) {
            runs.addArray().add(r[i]).add(r[i + 1]);
          }
        }
        case DirectoryEntry dir -> {
          n.put("type", "dir");
          n.put("mode", dir.mode());
        }
        case SymlinkEntry link -> {
          n.put("type", "symlink");
          n.put("target", link.target());
        }
      }
    }
    return root;
  }

  /**
   * Parses and validates a manifest.
   *
   * @throws ManifestException naming the offending entry when the manifest is not acceptable
   */
  public static Manifest parse(byte[] json) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new ManifestException("manifest is not valid JSON: " + e.getOriginalMessage(), e);
    } catch (IOException e) {
      throw new ManifestException("manifest cannot be read: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new ManifestException("manifest is not a JSON object");
    }
    JsonNode version = root.get("version");
    if (version == null || !version.isIntegralNumber() || !version.canConvertToInt()
        || version.intValue() < 1 || version.intValue() > VERSION) {
      throw new ManifestException(
          "unsupported manifest version " + version + " (this Thaw reads versions 1 to " + VERSION + ")");
    }
    boolean v2 = version.intValue() == 2;
    String hash = text(root, "hash", "manifest");
    if (!Hashes.ALGORITHM.equals(hash)) {
      throw new ManifestException("unsupported hash algorithm '" + hash + "' (this Thaw reads sha256)");
    }
    long chunkSize = number(root, "chunkSize", "manifest");
    if (chunkSize <= 0 || chunkSize > MAX_CHUNK_SIZE) {
      throw new ManifestException("chunk size " + chunkSize + " is outside 1.." + MAX_CHUNK_SIZE);
    }
    long blockSize = 0;
    if (v2) {
      blockSize = number(root, "blockSize", "manifest");
    } else if (root.has("blockSize")) {
      throw new ManifestException("a version 1 manifest has no 'blockSize' (block hashes are version 2)");
    }
    JsonNode direct = root.get("direct");
    String directSource = direct == null || direct.isNull() ? null : direct.asText();
    if (v2 && directSource != null) {
      throw new ManifestException("a direct-mode manifest has no block hashes: it is version 1");
    }
    JsonNode list = root.get("entries");
    if (list == null || !list.isArray()) {
      throw new ManifestException("manifest has no 'entries' array");
    }
    Builder b = new Builder((int) chunkSize, directSource);
    if (v2) {
      b.blockSize(blockSize);
    }
    for (JsonNode n : list) {
      String path = text(n, "path", "entry");
      checkPath(path);
      String type = text(n, "type", path);
      switch (type) {
        case "file" -> {
          long size = number(n, "size", path);
          int mode = mode(n, path);
          JsonNode runsNode = n.get("lengths");
          if (runsNode == null || !runsNode.isArray()) {
            throw new ManifestException("entry '" + path + "': no 'lengths'");
          }
          long[] runs = new long[runsNode.size() * 2];
          int i = 0;
          for (JsonNode run : runsNode) {
            if (!run.isArray() || run.size() != 2 || !integral(run.get(0)) || !integral(run.get(1))) {
              throw new ManifestException("entry '" + path + "': a length run must be [length, count]");
            }
            runs[i++] = run.get(0).longValue();
            runs[i++] = run.get(1).longValue();
          }
          if (directSource == null) {
            JsonNode blocks = n.get("blocks");
            if (blocks != null && !v2) {
              throw new ManifestException("entry '" + path + "': 'blocks' in a version 1 manifest (block hashes are version 2)");
            }
            b.file(path, size, mode, text(n, "chunks", path), runs, null, null,
                blocks == null ? null : text(n, "blocks", path));
          } else {
            b.file(path, size, mode, null, runs, text(n, "object", path), text(n, "version", path), null);
          }
        }
        case "dir" -> b.directory(path, mode(n, path));
        case "symlink" -> b.symlink(path, text(n, "target", path));
        default -> throw new ManifestException("entry '" + path + "': unknown type '" + type + "'");
      }
    }
    return b.build(json.clone());
  }

  private static String text(JsonNode n, String field, String where) {
    JsonNode v = n.get(field);
    if (v == null || !v.isTextual()) {
      throw new ManifestException(label(where) + ": missing text field '" + field + "'");
    }
    return v.textValue();
  }

  private static long number(JsonNode n, String field, String where) {
    JsonNode v = n.get(field);
    if (!integral(v)) {
      throw new ManifestException(label(where) + ": missing integer field '" + field + "' (or it is beyond 64 bits)");
    }
    return v.longValue();
  }

  /** An integer that fits a long exactly (a fraction or a larger number is not one). */
  private static boolean integral(JsonNode v) {
    return v != null && v.isIntegralNumber() && v.canConvertToLong();
  }

  /** A mode read as a whole number and range-checked before it is narrowed, so 2^32 + 0644 is not 0644. */
  private static int mode(JsonNode n, String path) {
    long mode = number(n, "mode", path);
    Builder.checkMode(path, mode);
    return (int) mode;
  }

  private static String label(String where) {
    return where.equals("manifest") || where.equals("entry") ? where : "entry '" + where + "'";
  }

  /** Refuses empty, absolute, "." or ".." segments and NUL characters. */
  static void checkPath(String path) {
    if (path.isEmpty()) {
      throw new ManifestException("entry '': empty path");
    }
    if (path.startsWith("/")) {
      throw new ManifestException("entry '" + path + "': absolute paths are refused");
    }
    if (path.indexOf('\0') >= 0 || path.indexOf('\\') >= 0) {
      throw new ManifestException("entry '" + path + "': NUL or backslash in path");
    }
    for (String seg : path.split("/", -1)) {
      if (seg.equals("..")) {
        throw new ManifestException("entry '" + path + "': '..' in path is refused");
      }
      if (seg.isEmpty() || seg.equals(".")) {
        throw new ManifestException("entry '" + path + "': empty or '.' path segment");
      }
    }
  }

  static void checkSymlink(SymlinkEntry s) {
    String target = s.target();
    if (target.isEmpty() || target.startsWith("/")) {
      throw new ManifestException("entry '" + s.path() + "': symlink target '" + target + "' is absolute or empty");
    }
    List<String> stack = new ArrayList<>(List.of(parentOf(s.path()).isEmpty() ? new String[0] : parentOf(s.path()).split("/")));
    for (String seg : target.split("/")) {
      if (seg.isEmpty() || seg.equals(".")) {
        continue;
      }
      if (seg.equals("..")) {
        if (stack.isEmpty()) {
          throw new ManifestException("entry '" + s.path() + "': symlink target '" + target + "' leaves the tree");
        }
        stack.removeLast();
      } else {
        stack.add(seg);
      }
    }
  }

  /**
   * Follows a symlink through the tree as the kernel follows it in a mount: each link met on the way is replaced by
   * its target, resolved from the link's own directory, so a chain of links that each stay inside cannot together
   * climb out ({@code a/b/up -> ../..} then {@code esc -> a/b/up/../../x}). A name the tree does not hold is taken
   * as a directory, which refuses more, never less. A chain longer than {@link #MAX_SYMLINK_HOPS} is refused as a
   * loop: the kernel would not resolve it either.
   */
  static void checkSymlinkChain(SymlinkEntry link, Map<String, Entry> tree) {
    Deque<String> todo = new ArrayDeque<>(List.of(link.target().split("/")));
    List<String> at = new ArrayList<>(segments(parentOf(link.path())));
    SymlinkEntry via = link;
    int hops = 1;
    while (!todo.isEmpty()) {
      String seg = todo.pollFirst();
      if (seg.isEmpty() || seg.equals(".")) {
        continue;
      }
      if (seg.equals("..")) {
        if (at.isEmpty()) {
          throw new ManifestException("entry '" + link.path() + "': symlink target '" + link.target() + "' leaves the tree"
              + (via == link ? "" : " through the link '" + via.path() + "' -> '" + via.target() + "'"));
        }
        at.removeLast();
        continue;
      }
      at.add(seg);
      if (tree.get(String.join("/", at)) instanceof SymlinkEntry next) {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw new ManifestException("entry '" + link.path() + "': symlink target '" + link.target()
              + "' goes through more than " + MAX_SYMLINK_HOPS + " links (a loop at '" + next.path() + "'?)");
        }
        at.removeLast(); // the next link's target is resolved from the directory that holds it
        String[] t = next.target().split("/");
        for (int i = t.length - 1; i >= 0; i--) {
          todo.addFirst(t[i]);
        }
        via = next;
      }
    }
  }

  private static List<String> segments(String path) {
    return path.isEmpty() ? List.of() : List.of(path.split("/"));
  }

  static String parentOf(String path) {
    int slash = path.lastIndexOf('/');
    return slash < 0 ? "" : path.substring(0, slash);
  }

  /** Creates an empty builder for a pushed manifest. */
  public static Builder builder(int chunkSize) {
    return new Builder(chunkSize, null);
  }

  /** Creates an empty builder for a direct-mode manifest listed from {@code sourceUri}. */
  public static Builder directBuilder(int chunkSize, String sourceUri) {
    return new Builder(chunkSize, sourceUri);
  }

  /** Collects entries; {@link #build()} validates them. */
  public static final class Builder {
    private final int chunkSize;
    private final String directSource;
    private int blockSize;
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    private Builder(int chunkSize, String directSource) {
      if (chunkSize <= 0 || chunkSize > MAX_CHUNK_SIZE) {
        throw new ManifestException("chunk size " + chunkSize + " is outside 1.." + MAX_CHUNK_SIZE);
      }
      this.chunkSize = chunkSize;
      this.directSource = directSource;
    }

    /**
     * Makes this a version 2 manifest whose files may list the hash of every {@code blockSize} bytes of each chunk:
     * a power of two from 4096 up to the chunk size, which it must divide. Set before any file.
     */
    public Builder blockSize(long blockSize) {
      if (directSource != null) {
        throw new ManifestException("a direct-mode manifest has no block hashes");
      }
      if (blockSize < MIN_BLOCK_SIZE || blockSize > chunkSize || Long.bitCount(blockSize) != 1 || chunkSize % blockSize != 0) {
        throw new ManifestException("block size " + blockSize + " is not a power of two from " + MIN_BLOCK_SIZE
            + " up to the chunk size " + chunkSize + " that divides it");
      }
      if (!entries.isEmpty()) {
        throw new IllegalStateException("the block size is set before any entry");
      }
      this.blockSize = (int) blockSize;
      return this;
    }

    /** Adds a pushed file from its chunk hashes (raw, 32 bytes each) and lengths. */
    public Builder file(String path, int mode, List<byte[]> hashes, List<Integer> lengths) {
      return file(path, mode, hashes, lengths, null);
    }

    /**
     * Adds a pushed file from its chunk hashes (raw, 32 bytes each), lengths and, with a {@link #blockSize}, the raw
     * hashes of its blocks chunk by chunk ({@code blocks}, or null to list none).
     */
    public Builder file(String path, int mode, List<byte[]> hashes, List<Integer> lengths, byte[] blocks) {
      if (hashes.size() != lengths.size()) {
        throw new ManifestException("entry '" + path + "': " + hashes.size() + " hashes for " + lengths.size() + " lengths");
      }
      byte[] raw = new byte[hashes.size() * Hashes.LENGTH];
      long size = 0;
      for (int i = 0; i < hashes.size(); i++) {
        System.arraycopy(hashes.get(i), 0, raw, i * Hashes.LENGTH, Hashes.LENGTH);
        size += lengths.get(i);
      }
      return file(path, size, mode, Base64.getEncoder().encodeToString(raw), runs(lengths), null, null,
          blocks == null ? null : Base64.getEncoder().encodeToString(blocks));
    }

    /** Adds a direct-mode file: {@code size} bytes of object {@code objectKey} at {@code version}. */
    public Builder directFile(String path, long size, int mode, String objectKey, String version) {
      checkChunkCount(path, size, chunkSize);
      List<Integer> lengths = new ArrayList<>();
      for (long off = 0; off < size; off += chunkSize) {
        lengths.add((int) Math.min(chunkSize, size - off));
      }
      return file(path, size, mode, null, runs(lengths), objectKey, version, null);
    }

    private static long[] runs(List<Integer> lengths) {
      List<long[]> runs = new ArrayList<>();
      for (int len : lengths) {
        if (!runs.isEmpty() && runs.getLast()[0] == len) {
          runs.getLast()[1]++;
        } else {
          runs.add(new long[] {len, 1});
        }
      }
      long[] flat = new long[runs.size() * 2];
      for (int i = 0; i < runs.size(); i++) {
        flat[2 * i] = runs.get(i)[0];
        flat[2 * i + 1] = runs.get(i)[1];
      }
      return flat;
    }

    Builder file(String path, long size, int mode, String hashes, long[] runs, String objectKey, String version,
        String blocks) {
      checkPath(path);
      if (size < 0) {
        throw new ManifestException("entry '" + path + "': negative size " + size);
      }
      checkMode(path, mode);
      long sum = 0;
      long count = 0;
      for (int i = 0; i < runs.length; i += 2) {
        long len = runs[i];
        long n = runs[i + 1];
        if (len <= 0 || len > chunkSize || n <= 0) {
          throw new ManifestException(
              "entry '" + path + "': chunk length " + len + " x " + n + " is outside 1.." + chunkSize);
        }
        // Bounded before any arithmetic: a sum that wrapped could match the size while the runs describe 2^64 more.
        if (n > MAX_CHUNKS_PER_FILE || (count += n) > MAX_CHUNKS_PER_FILE) {
          throw new ManifestException("entry '" + path + "': its lengths declare more than " + MAX_CHUNKS_PER_FILE
              + " chunks, the most one file may have (run " + len + " x " + n + ")");
        }
        sum += len * n; // at most 2^28 x 2^20 per run and 2^20 chunks in all: exact
      }
      if (sum != size) {
        throw new ManifestException(
            "entry '" + path + "': chunk lengths sum to " + sum + " bytes but the file size is " + size);
      }
      if (hashes != null) {
        long decoded = base64Length(hashes);
        if (decoded != count * Hashes.LENGTH) {
          throw new ManifestException(
              "entry '" + path + "': " + decoded / (double) Hashes.LENGTH + " chunk hashes for " + count + " chunks");
        }
      }
      if (blocks != null) {
        if (blockSize == 0) {
          throw new ManifestException("entry '" + path + "': block hashes without a block size");
        }
        long blockCount = 0;
        for (int i = 0; i < runs.length; i += 2) {
          blockCount += BlockHashes.blocksIn(runs[i], blockSize) * runs[i + 1]; // at most 2^16 x 2^20: exact
        }
        if (blockCount > MAX_BLOCKS_PER_FILE) {
          throw new ManifestException("entry '" + path + "': " + blockCount + " block hashes, more than the "
              + MAX_BLOCKS_PER_FILE + " one file may list");
        }
        long decoded = base64Length(blocks);
        if (decoded != blockCount * Hashes.LENGTH) {
          throw new ManifestException(
              "entry '" + path + "': " + decoded / (double) Hashes.LENGTH + " block hashes for " + blockCount + " blocks");
        }
      }
      add(new FileEntry(path, size, mode, hashes, runs, objectKey, version, directSource, blocks, blockSize));
      return this;
    }

    public Builder directory(String path, int mode) {
      checkPath(path);
      checkMode(path, mode);
      add(new DirectoryEntry(path, mode));
      return this;
    }

    public Builder symlink(String path, String target) {
      checkPath(path);
      add(new SymlinkEntry(path, target));
      return this;
    }

    private void add(Entry e) {
      if (entries.putIfAbsent(e.path(), e) != null) {
        throw new ManifestException("entry '" + e.path() + "': duplicate path");
      }
    }

    /**
     * Refuses a file of {@code size} bytes that would have more than {@link #MAX_CHUNKS_PER_FILE} chunks of
     * {@code chunkSize}, naming the chunk size that would do; what a push checks before it uploads anything.
     */
    static void checkChunkCount(String path, long size, int chunkSize) {
      if (size > 0 && (size - 1) / chunkSize + 1 > MAX_CHUNKS_PER_FILE) {
        throw tooManyChunks(path, size, chunkSize);
      }
    }

    private static ManifestException tooManyChunks(String path, long size, int chunkSize) {
      long least = (size + MAX_CHUNKS_PER_FILE - 1) / MAX_CHUNKS_PER_FILE;
      return new ManifestException("entry '" + path + "': " + size + " bytes in chunks of " + chunkSize
          + " bytes is more than " + MAX_CHUNKS_PER_FILE + " chunks, the most one file may have; "
          + (least <= MAX_CHUNK_SIZE ? "use a chunk size of at least " + least + " bytes" : "the file is too large"));
    }

    /** Validates the tree collected so far (paths, parents, symlink chains), as {@link #build()} would. */
    void checkTree() {
      build();
    }

    static void checkMode(String path, long mode) {
      if (mode < 0 || mode > 07777) {
        throw new ManifestException("entry '" + path + "': mode " + Long.toOctalString(mode) + " is not a permission mode");
      }
    }

    private static long base64Length(String s) {
      int len = s.length();
      if (len % 4 != 0) {
        return -1;
      }
      int pad = len > 0 && s.charAt(len - 1) == '=' ? (len > 1 && s.charAt(len - 2) == '=' ? 2 : 1) : 0;
      return (long) len / 4 * 3 - pad;
    }

    public Manifest build() {
      return build(null);
    }

    Manifest build(byte[] canonical) {
      TreeMap<String, Entry> sorted = new TreeMap<>(entries);
      return new Manifest(chunkSize, blockSize, directSource, new ArrayList<>(sorted.values()), canonical);
    }
  }

  @Override
  public String toString() {
    return "manifest " + digest() + " (" + entries.size() + " entries, " + totalBytes() + " bytes)";
  }
}
