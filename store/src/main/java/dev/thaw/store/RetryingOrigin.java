package dev.thaw.store;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/** Wraps an origin so every request is retried by a {@link RetryPolicy}. */
final class RetryingOrigin implements Origin {
  private final Origin delegate;
  private final RetryPolicy policy;

  RetryingOrigin(Origin delegate, RetryPolicy policy) {
    this.delegate = delegate;
    this.policy = policy;
  }

  Origin delegate() {
    return delegate;
  }

  @Override
  public String uri() {
    return delegate.uri();
  }

  @Override
  public String urlOf(String key) {
    return delegate.urlOf(key);
  }

  @Override
  public boolean writable() {
    return delegate.writable();
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
    read(key, offset, dst, ifMatch, ReadProgress.NONE);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch, ReadProgress progress) throws OriginException {
    int position = dst.position();
    boolean[] tried = {false};
    policy.run(() -> {
      if (tried[0]) {
        progress.restarted(); // before the new try overwrites what the failed one filled
      }
      tried[0] = true;
      dst.position(position);
      delegate.read(key, offset, dst, ifMatch, progress);
      return null;
    });
  }

  @Override
  public byte[] readAll(String key) throws OriginException {
    return policy.run(() -> delegate.readAll(key));
  }

  @Override
  public Optional<ObjectInfo> stat(String key) throws OriginException {
    return policy.run(() -> delegate.stat(key));
  }

  @Override
  public List<ObjectInfo> list(String prefix) throws OriginException {
    return policy.run(() -> delegate.list(prefix));
  }

  @Override
  public void write(String key, ByteBuffer data) throws OriginException {
    int position = data.position();
    policy.run(() -> {
      data.position(position);
      delegate.write(key, data);
      return null;
    });
  }

  @Override
  public void delete(String key) throws OriginException {
    policy.run(() -> {
      delegate.delete(key);
      return null;
    });
  }

  @Override
  public void touch(String key) throws OriginException {
    policy.run(() -> {
      delegate.touch(key);
      return null;
    });
  }

  @Override
  public void close() {
    delegate.close();
  }

  @Override
  public String toString() {
    return delegate.toString();
  }
}
