package dev.thaw.fuse;

/**
 * How a model is mounted.
 *
 * @param allowOther let other users (a model server running as another user) read the mount; needs
 *     {@code user_allow_other} in /etc/fuse.conf unless mounting as root
 * @param readaheadKb the kernel's readahead for the mount, raised after mounting (0 keeps the kernel's default)
 * @param name shown as the mount's source in {@code mount} and {@code /proc/mounts}
 */
public record MountOptions(boolean allowOther, int readaheadKb, String name) {
  /** No allow_other, 4 MiB readahead (so the kernel sends 1 MiB requests), named "thaw". */
  public static final MountOptions DEFAULT = new MountOptions(false, 4096, "thaw");

  public MountOptions withAllowOther(boolean allow) {
    return new MountOptions(allow, readaheadKb, name);
  }

  public MountOptions withName(String n) {
    return new MountOptions(allowOther, readaheadKb, n);
  }

  /**
   * The name a model's mount goes by: {@code thaw:SOURCE@DIGEST}. A snapshot of a server reading through the mount
   * records it (checkpoint-native's ExternalMounts), and a restore mounts the same manifest there again, whatever the
   * tag names by then.
   */
  public static String thawName(String source, String digest) {
    return "thaw:" + source + "@" + digest;
  }
}
