package dev.thaw.checkpoint;

import java.io.IOException;

/** CRIU failed, or cannot run here; the message ends with the tail of CRIU's log when there is one. */
public final class CriuException extends IOException {
  private static final long serialVersionUID = 1L;

  public CriuException(String message) {
    super(message);
  }

  public CriuException(String message, Throwable cause) {
    super(message, cause);
  }
}
