package dev.thaw.store;

/** One node of a manifest's tree: a regular file, a directory or a symbolic link. */
public sealed interface Entry permits FileEntry, DirectoryEntry, SymlinkEntry {
  /** Slash-separated path relative to the model's root; never empty, never absolute, never with "..". */
  String path();

  /** Permission bits (e.g. 0644). */
  int mode();

  /** The last path segment. */
  default String name() {
    String p = path();
    return p.substring(p.lastIndexOf('/') + 1);
  }
}
