package dev.thaw.store;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
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
 * or holds "..", a duplicate path, a symlink that leaves the tree, or chunk lengths that do not add up to the
 * file size are refused with a {@link ManifestException} that names the entry.
 */
public final class Manifest {
  /** The format version this code writes and reads. */
  public static final int VERSION = 1;
  /** The largest chunk a manifest may declare. */
  public static final int MAX_CHUNK_SIZE = 256 << 20;

  static final ObjectMapper JSON = new ObjectMapper();

  private final int chunkSize;
  private final String directSource; // null for pushed manifests
  private final List<Entry> entries; // sorted by path
  private final Map<String, Entry> byPath;
  private final Map<String, List<Entry>> children;
  private volatile byte[] canonical;
  private volatile String digest;

  private Manifest(int chunkSize, String directSource, List<Entry> entries, byte[] canonical) {
    this.chunkSize = chunkSize;
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
    for (Entry e : entries) {
      if (e instanceof SymlinkEntry s) {
        checkSymlink(s);
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
    root.put("version", VERSION);
    root.put("hash", Hashes.ALGORITHM);
    root.put("chunkSize", chunkSize);
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
    if (version == null || !version.canConvertToInt() || version.intValue() != VERSION) {
      throw new ManifestException(
          "unsupported manifest version " + version + " (this Thaw reads version " + VERSION + ")");
    }
    String hash = text(root, "hash", "manifest");
    if (!Hashes.ALGORITHM.equals(hash)) {
      throw new ManifestException("unsupported hash algorithm '" + hash + "' (this Thaw reads sha256)");
    }
    long chunkSize = number(root, "chunkSize", "manifest");
    if (chunkSize <= 0 || chunkSize > MAX_CHUNK_SIZE) {
      throw new ManifestException("chunk size " + chunkSize + " is outside 1.." + MAX_CHUNK_SIZE);
    }
    JsonNode direct = root.get("direct");
    String directSource = direct == null || direct.isNull() ? null : direct.asText();
    JsonNode list = root.get("entries");
    if (list == null || !list.isArray()) {
      throw new ManifestException("manifest has no 'entries' array");
    }
    Builder b = new Builder((int) chunkSize, directSource);
    for (JsonNode n : list) {
      String path = text(n, "path", "entry");
      checkPath(path);
      String type = text(n, "type", path);
      switch (type) {
        case "file" -> {
          long size = number(n, "size", path);
          int mode = (int) number(n, "mode", path);
          JsonNode runsNode = n.get("lengths");
          if (runsNode == null || !runsNode.isArray()) {
            throw new ManifestException("entry '" + path + "': no 'lengths'");
          }
          long[] runs = new long[runsNode.size() * 2];
          int i = 0;
          for (JsonNode run : runsNode) {
            if (!run.isArray() || run.size() != 2 || !run.get(0).canConvertToLong() || !run.get(1).canConvertToLong()) {
              throw new ManifestException("entry '" + path + "': a length run must be [length, count]");
            }
            runs[i++] = run.get(0).longValue();
            runs[i++] = run.get(1).longValue();
          }
          if (directSource == null) {
            b.file(path, size, mode, text(n, "chunks", path), runs, null, null);
          } else {
            b.file(path, size, mode, null, runs, text(n, "object", path), text(n, "version", path));
          }
        }
        case "dir" -> b.directory(path, (int) number(n, "mode", path));
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
    if (v == null || !v.canConvertToLong() || !v.isIntegralNumber()) {
      throw new ManifestException(label(where) + ": missing integer field '" + field + "'");
    }
    return v.longValue();
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
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    private Builder(int chunkSize, String directSource) {
      if (chunkSize <= 0 || chunkSize > MAX_CHUNK_SIZE) {
        throw new ManifestException("chunk size " + chunkSize + " is outside 1.." + MAX_CHUNK_SIZE);
      }
      this.chunkSize = chunkSize;
      this.directSource = directSource;
    }

    /** Adds a pushed file from its chunk hashes (raw, 32 bytes each) and lengths. */
    public Builder file(String path, int mode, List<byte[]> hashes, List<Integer> lengths) {
      if (hashes.size() != lengths.size()) {
        throw new ManifestException("entry '" + path + "': " + hashes.size() + " hashes for " + lengths.size() + " lengths");
      }
      byte[] raw = new byte[hashes.size() * Hashes.LENGTH];
      long size = 0;
      for (int i = 0; i < hashes.size(); i++) {
        System.arraycopy(hashes.get(i), 0, raw, i * Hashes.LENGTH, Hashes.LENGTH);
        size += lengths.get(i);
      }
      return file(path, size, mode, Base64.getEncoder().encodeToString(raw), runs(lengths), null, null);
    }

    /** Adds a direct-mode file: {@code size} bytes of object {@code objectKey} at {@code version}. */
    public Builder directFile(String path, long size, int mode, String objectKey, String version) {
      List<Integer> lengths = new ArrayList<>();
      for (long off = 0; off < size; off += chunkSize) {
        lengths.add((int) Math.min(chunkSize, size - off));
      }
      return file(path, size, mode, null, runs(lengths), objectKey, version);
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

    Builder file(String path, long size, int mode, String hashes, long[] runs, String objectKey, String version) {
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
        sum += len * n;
        count += n;
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
      add(new FileEntry(path, size, mode, hashes, runs, objectKey, version, directSource));
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

    private static void checkMode(String path, int mode) {
      if (mode < 0 || mode > 07777) {
        throw new ManifestException("entry '" + path + "': mode " + Integer.toOctalString(mode) + " is not a permission mode");
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
      return new Manifest(chunkSize, directSource, new ArrayList<>(sorted.values()), canonical);
    }
  }

  @Override
  public String toString() {
    return "manifest " + digest() + " (" + entries.size() + " entries, " + totalBytes() + " bytes)";
  }
}
