package dev.thaw.store;

/** A directory in a manifest's tree. */
public record DirectoryEntry(String path, int mode) implements Entry {}
