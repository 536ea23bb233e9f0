package dev.thaw.store;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A Thaw store at an origin: resolves tags to manifests (verifying each manifest against its digest) and keeps
 * access profiles beside them. Object layout: {@code manifests/<sha256>.json}, {@code tags/<name>/<tag>} (text:
 * the manifest digest), {@code profiles/<sha256>.json}, {@code chunks/<2 hex>/<sha256>}.
 */
public final class ModelStore {
  private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(ModelStore.class.getName());
  /** Reads of a tag or manifest whose bytes are wrong, before giving up: as a corrupt chunk is fetched again. */
  static final int READS = 3;

  private final Origin origin;

  public ModelStore(Origin origin) {
    this.origin = origin;
  }

  public Origin origin() {
    return origin;
  }

  static String manifestKey(String digest) {
    return "manifests/" + hexOf(digest) + ".json";
  }

  static String profileKey(String digest) {
    return "profiles/" + hexOf(digest) + ".json";
  }

  private static String hexOf(String digest) {
    String hex = digest.startsWith("sha256:") ? digest.substring(7) : digest;
    if (!Hashes.isHex(hex, 64)) {
      throw new IllegalArgumentException("not a sha256 digest: " + digest);
    }
    return hex;
  }

  /** The digest a tag points at; a tag that does not read as a digest is read again, as a corrupt chunk is. */
  public String digestOf(ModelName name) throws OriginException {
    String text = null;
    for (int read = 1; read <= READS; read++) {
      try {
        text = new String(origin.readAll(name.tagKey()), StandardCharsets.UTF_8).trim();
      } catch (OriginException e) {
        if (e.isNotFound()) {
          throw new OriginException(e.url(), 404, false,
              "no model " + name + " at " + origin.uri() + " (tag object " + e.url() + " not found)", null);
        }
        throw e;
      }
      String hex = text.startsWith("sha256:") ? text.substring(7) : text;
      if (Hashes.isHex(hex, 64)) {
        return "sha256:" + hex;
      }
      String got = text;
      LOG.warning(() -> "event=tag_corrupt url=" + origin.urlOf(name.tagKey()) + " got=\"" + abbreviate(got) + "\" action=refetch");
    }
    throw new ManifestException("tag " + origin.urlOf(name.tagKey()) + " of " + name + " holds '" + abbreviate(text)
        + "', not a manifest digest (sha256:<64 hex>), on " + READS + " reads in a row; push the model again");
  }

  /** Resolves {@code name} through its tag and loads its manifest. */
  public Manifest resolve(ModelName name) throws OriginException {
    String digest = digestOf(name);
    for (int read = 1; ; read++) {
      try {
        return load(digest);
      } catch (OriginException e) {
        if (!e.isNotFound() || read >= READS) {
          throw e;
        }
        // A tag damaged on the way can still read as a digest, of a manifest that does not exist: read the tag again.
        String again = digestOf(name);
        if (again.equals(digest)) {
          throw new OriginException(e.url(), 404, false, "tag " + origin.urlOf(name.tagKey()) + " of " + name
              + " names manifest " + digest + ", which is not at the origin (" + e.url() + ")", null);
        }
        String was = digest;
        LOG.warning(() -> "event=tag_changed url=" + origin.urlOf(name.tagKey()) + " was=" + was + " now=" + again);
        digest = again;
      }
    }
  }

  /**
   * Loads a manifest by digest. Bytes that do not hash to it are read again (a byte flipped in transit), and refused
   * when they still do not after {@value #READS} reads.
   */
  public Manifest load(String digest) throws OriginException {
    String expected = "sha256:" + hexOf(digest);
    String url = origin.urlOf(manifestKey(digest));
    String actual = null;
    for (int read = 1; read <= READS; read++) {
      byte[] bytes = origin.readAll(manifestKey(digest));
      actual = "sha256:" + Hashes.sha256Hex(bytes);
      if (actual.equals(expected)) {
        return Manifest.parse(bytes);
      }
      String got = actual;
      LOG.warning(() -> "event=manifest_corrupt url=" + url + " expected=" + expected + " got=" + got + " action=refetch");
    }
    throw new ManifestException("manifest " + url + " is corrupt: its bytes hash to " + actual + ", not " + expected
        + ", on " + READS + " reads in a row");
  }

  private static String abbreviate(String s) {
    return s == null || s.length() <= 80 ? s : s.substring(0, 80) + "...";
  }

  /** Writes a manifest (if absent) and then its tag; call only once every chunk is stored. */
  public void publish(Manifest manifest, ModelName name) throws OriginException {
    String key = manifestKey(manifest.digest());
    if (origin.stat(key).isEmpty()) {
      origin.write(key, ByteBuffer.wrap(manifest.canonicalBytes()));
    }
    origin.write(name.tagKey(), ByteBuffer.wrap((manifest.digest() + "\n").getBytes(StandardCharsets.UTF_8)));
  }

  /** Every tag at the origin. */
  public List<ModelName> tags() throws OriginException {
    List<ModelName> out = new ArrayList<>();
    for (ObjectInfo o : origin.list("tags/")) {
      String rest = o.key().substring("tags/".length());
      int slash = rest.lastIndexOf('/');
      if (slash > 0) {
        out.add(new ModelName(rest.substring(0, slash), rest.substring(slash + 1)));
      }
    }
    return out;
  }

  /**
   * The access profile recorded for a manifest: from the origin, else from {@code localDir} (where it is kept when
   * the origin is read-only). Empty when none was recorded; a damaged profile is ignored, it only costs speed.
   */
  public Optional<AccessProfile> profile(Manifest manifest, Path localDir) {
    String key = profileKey(manifest.digest());
    try {
      return Optional.of(AccessProfile.parse(origin.readAll(key), manifest));
    } catch (IOException | RuntimeException e) {
      // fall through to the local copy
    }
    Path local = localDir == null ? null : localDir.resolve(key);
    if (local != null && Files.exists(local)) {
      try {
        return Optional.of(AccessProfile.parse(Files.readAllBytes(local), manifest));
      } catch (IOException | RuntimeException e) {
        return Optional.empty();
      }
    }
    return Optional.empty();
  }

  /**
   * Saves a profile at the origin when it is writable, else under {@code localDir}.
   *
   * @return where it was saved
   */
  public String saveProfile(AccessProfile profile, Path localDir) throws IOException {
    return saveProfile(profile, localDir, true);
  }

  /**
   * Saves a profile at the origin when {@code toOrigin} and it is writable, else under {@code localDir} (direct-mode
   * models keep theirs locally: the origin is someone's bucket of ordinary files).
   *
   * @return where it was saved
   */
  public String saveProfile(AccessProfile profile, Path localDir, boolean toOrigin) throws IOException {
    String key = profileKey(profile.manifestDigest());
    if (toOrigin && origin.writable()) {
      origin.write(key, ByteBuffer.wrap(profile.toJson()));
      return origin.urlOf(key);
    }
    Path local = localDir.resolve(key);
    Files.createDirectories(local.getParent());
    Path tmp = local.resolveSibling(local.getFileName() + ".tmp");
    Files.write(tmp, profile.toJson());
    Files.move(tmp, local, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    return local.toString();
  }
}
