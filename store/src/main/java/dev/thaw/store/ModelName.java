package dev.thaw.store;

import java.util.regex.Pattern;

/**
 * A model's name and tag, written {@code NAME[:TAG]}; the tag defaults to {@code latest}. Names are one or more
 * slash-separated segments of letters, digits, '.', '_' and '-' (no "." or ".." segments); tags likewise without
 * slashes.
 */
public record ModelName(String name, String tag) {
  private static final Pattern SEGMENT = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,127}");

  public ModelName {
    for (String seg : name.split("/", -1)) {
      if (!SEGMENT.matcher(seg).matches()) {
        throw new IllegalArgumentException("invalid model name '" + name + "': segments are letters, digits, '.', '_', '-'");
      }
    }
    if (!SEGMENT.matcher(tag).matches()) {
      throw new IllegalArgumentException("invalid tag '" + tag + "': letters, digits, '.', '_', '-'");
    }
  }

  public static ModelName parse(String s) {
    int colon = s.lastIndexOf(':');
    return colon < 0 ? new ModelName(s, "latest") : new ModelName(s.substring(0, colon), s.substring(colon + 1));
  }

  /** The origin key of the tag object. */
  public String tagKey() {
    return "tags/" + name + "/" + tag;
  }

  @Override
  public String toString() {
    return name + ":" + tag;
  }
}
