package dev.thaw.store;

/** A chunk whose bytes did not match its hash on two fetches in a row. */
public final class ChunkCorruptException extends java.io.IOException {
  public ChunkCorruptException(String message) {
    super(message);
  }
}
