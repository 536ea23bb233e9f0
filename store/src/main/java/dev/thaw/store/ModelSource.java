package dev.thaw.store;

import java.io.IOException;

/**
 * A model as a person names it, one grammar for the command line and the sidecar: {@code NAME[:TAG]} or
 * {@code sha256:DIGEST} at an origin given elsewhere; {@code ORIGIN#NAME[:TAG]} or {@code ORIGIN#sha256:DIGEST}
 * naming its origin too; or a direct-mode URI ({@code s3://bucket/prefix/}, {@code file:///dir}) whose objects are
 * read as ordinary files, without a push.
 */
public final class ModelSource {
  private final String text;
  private final String origin;
  private final String ref;
  private final ModelName name; // null for a digest or a direct-mode source

  private ModelSource(String text, String origin, String ref, ModelName name) {
    this.text = text;
    this.origin = origin;
    this.ref = ref;
    this.name = name;
  }

  /**
   * Parses {@code text}.
   *
   * @throws IllegalArgumentException when it is blank, or its name or digest is not a valid one (the message says why)
   */
  public static ModelSource parse(String text) {
    if (text == null || text.isBlank()) {
      throw new IllegalArgumentException("no model named: NAME[:TAG], sha256:DIGEST, ORIGIN#NAME[:TAG], or a "
          + "direct-mode URI (s3://bucket/prefix/, file:///dir)");
    }
    String t = text.strip();
    int hash = t.indexOf('#');
    if (t.contains("://") && hash < 0) {
      return new ModelSource(t, t, null, null);
    }
    String origin = hash >= 0 ? t.substring(0, hash) : null;
    String ref = hash >= 0 ? t.substring(hash + 1) : t;
    if (origin != null && origin.isBlank()) {
      throw new IllegalArgumentException("no origin before '#' in " + t);
    }
    if (ref.startsWith("sha256:")) {
      if (!Hashes.isHex(ref.substring("sha256:".length()), 2 * Hashes.LENGTH)) {
        throw new IllegalArgumentException("not a manifest digest: " + ref + " (sha256: and 64 lower-case hex digits)");
      }
      return new ModelSource(t, origin, ref, null);
    }
    return new ModelSource(t, origin, ref, ModelName.parse(ref)); // its message says what is wrong with a name
  }

  /** Whether this is a direct-mode URI, its own origin, read without a push. */
  public boolean isDirect() {
    return ref == null;
  }

  /** The origin the source names (the direct-mode URI, or the part before {@code #}); null when it names none. */
  public String origin() {
    return origin;
  }

  /** {@code NAME[:TAG]} or {@code sha256:DIGEST}; null for a direct-mode source. */
  public String ref() {
    return ref;
  }

  /** A source's manifest and how to show where it came from. */
  public record Resolved(Manifest manifest, String display) {}

  /**
   * Reads this source's manifest from {@code at}: the origin it names, or the caller's default when it names none.
   *
   * @throws java.io.FileNotFoundException when the origin has no such model, tag or manifest
   */
  public Resolved resolve(Origin at) throws IOException {
    if (isDirect()) {
      return new Resolved(DirectListing.list(at, Pusher.DEFAULT_CHUNK_SIZE), text + " (direct)");
    }
    ModelStore store = new ModelStore(at);
    return name == null ? new Resolved(store.load(ref), ref + " at " + at.uri())
        : new Resolved(store.resolve(name), name + " at " + at.uri());
  }

  @Override
  public String toString() {
    return text;
  }
}
