package dev.thaw.store;

/** A symbolic link whose target stays inside the model's tree (checked when the manifest is loaded). */
public record SymlinkEntry(String path, String target) implements Entry {
  @Override
  public int mode() {
    return 0777;
  }
}
