package dev.thaw.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The order in which a load first touched a model's chunks, as runs of consecutive chunks of one file. Replayed by
 * {@link ModelReader#prefetch(AccessProfile)} so the next load streams at full parallelism instead of waiting on
 * one blocking read after another. Stored as JSON beside the manifest: {@code profiles/<manifest sha256>.json}.
 *
 * @param manifestDigest the manifest the profile was recorded on
 * @param runs touched chunks in first-touch order
 */
public record AccessProfile(String manifestDigest, List<Run> runs) {
  /** Chunks {@code start .. start+count-1} of {@code path}. */
  public record Run(String path, int start, int count) {}

  public AccessProfile {
    runs = List.copyOf(runs);
  }

  public int chunkCount() {
    int n = 0;
    for (Run r : runs) {
      n += r.count();
    }
    return n;
  }

  /**
   * The part of this profile under {@code directory} (a path of the manifest, such as one model of a Triton
   * repository): its files' runs, in order.
   */
  public AccessProfile under(String directory) {
    String prefix = directory.endsWith("/") ? directory : directory + "/";
    return new AccessProfile(manifestDigest, runs.stream().filter(r -> r.path().startsWith(prefix)).toList());
  }

  /**
   * This profile, then the chunks of {@code later} it lacks, in {@code later}'s order: what a run that read more than
   * the recorded profile (a model loaded for the first time) adds to it.
   *
   * @throws IllegalArgumentException when {@code later} was recorded on another manifest
   */
  public AccessProfile plus(AccessProfile later) {
    if (!later.manifestDigest.equals(manifestDigest)) {
      throw new IllegalArgumentException("profiles of different manifests: " + manifestDigest + " and "
          + later.manifestDigest);
    }
    java.util.Set<String> have = new java.util.HashSet<>();
    List<String> paths = new ArrayList<>();
    List<Integer> indexes = new ArrayList<>();
    for (AccessProfile p : List.of(this, later)) {
      for (Run r : p.runs) {
        for (int i = r.start(); i < r.start() + r.count(); i++) {
          if (have.add(r.path() + '\0' + i)) {
            paths.add(r.path());
            indexes.add(i);
          }
        }
      }
    }
    return of(manifestDigest, paths, indexes);
  }

  /** Builds a profile from (path, chunk index) touches in order, merging consecutive chunks. */
  static AccessProfile of(String manifestDigest, List<String> paths, List<Integer> indexes) {
    List<Run> runs = new ArrayList<>();
    String path = null;
    int start = 0;
    int count = 0;
    for (int i = 0; i < paths.size(); i++) {
      String p = paths.get(i);
      int idx = indexes.get(i);
      if (p.equals(path) && idx == start + count) {
        count++;
        continue;
      }
      if (path != null) {
        runs.add(new Run(path, start, count));
      }
      path = p;
      start = idx;
      count = 1;
    }
    if (path != null) {
      runs.add(new Run(path, start, count));
    }
    return new AccessProfile(manifestDigest, runs);
  }

  public byte[] toJson() {
    ObjectNode root = Manifest.JSON.createObjectNode();
    root.put("version", 1);
    root.put("manifest", manifestDigest);
    ArrayNode list = root.putArray("runs");
    for (Run r : runs) {
      list.addArray().add(r.path()).add(r.start()).add(r.count());
    }
    return CanonicalJson.write(root).getBytes(StandardCharsets.UTF_8);
  }

  /** Parses a stored profile; refuses one recorded on another manifest. */
  public static AccessProfile parse(byte[] json, Manifest manifest) throws IOException {
    JsonNode root = Manifest.JSON.readTree(json);
    String digest = root.path("manifest").asText();
    if (!digest.equals(manifest.digest())) {
      throw new IOException("profile was recorded on " + digest + ", not on " + manifest.digest());
    }
    List<Run> runs = new ArrayList<>();
    for (JsonNode r : root.path("runs")) {
      String path = r.get(0).asText();
      int start = r.get(1).asInt();
      int count = r.get(2).asInt();
      if (!(manifest.entry(path) instanceof FileEntry f) || start < 0 || count < 1 || start + count > f.chunkCount()) {
        throw new IOException("profile names chunks " + start + "+" + count + " of '" + path + "', which the manifest lacks");
      }
      runs.add(new Run(path, start, count));
    }
    return new AccessProfile(digest, runs);
  }
}
