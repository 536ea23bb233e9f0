package dev.thaw.fuse;

/**
 * How a model is mounted.
 *
 * @param allowOther let other users (a model server running as another user) read the mount; needs
 *     {@code user_allow_other} in /etc/fuse.conf unless mounting as root
 * @param readaheadKb the kernel's readahead for the mount, raised after mounting (0 keeps the kernel's default)
 * @param name shown as the mount's source in {@code mount} and {@code /proc/mounts}
 * @param passthrough let the kernel read a file once read whole from its verified whole-file copy in the cache (FUSE
 *     passthrough: Linux 6.9 or later, CAP_SYS_ADMIN), at disk and page-cache speed with no work in Thaw. Off by
 *     default: a server that maps such a file and is then checkpointed has CRIU record the copy's path in the cache,
 *     not the mount's, so its snapshot would restore only beside that cache.
 */
public record MountOptions(boolean allowOther, int readaheadKb, String name, boolean passthrough) {
  /** No allow_other, 4 MiB readahead (so the kernel sends 1 MiB requests), named "thaw", no passthrough. */
  public static final MountOptions DEFAULT = new MountOptions(false, 4096, "thaw", false);

  public MountOptions withAllowOther(boolean allow) {
    return new MountOptions(allow, readaheadKb, name, passthrough);
  }

  public MountOptions withName(String n) {
    return new MountOptions(allowOther, readaheadKb, n, passthrough);
  }

  public MountOptions withPassthrough(boolean on) {
    return new MountOptions(allowOther, readaheadKb, name, on);
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
