package dev.thaw.agent;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.security.CodeSource;
import java.security.ProtectionDomain;
import java.security.cert.Certificate;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;

/**
 * Loads the agent's internals from the {@code inst/} entries of its jar, where they are stored as {@code .classdata}
 * so that no other class loader finds them. Its parent is the platform class loader (the JDK, nothing of the
 * application's); the hooks alone come from the class loader that loaded the agent, the one the libraries call them in.
 */
final class InternalClassLoader extends ClassLoader {
  static {
    registerAsParallelCapable();
  }

  private static final String PREFIX = "inst/";
  private static final String HOOKS = "dev.thaw.agent.bootstrap.";
  private final JarFile jar;
  private final ProtectionDomain domain;
  private final ClassLoader hooks;

  InternalClassLoader(JarFile jar, ClassLoader hooks) {
    super("thaw-agent", ClassLoader.getPlatformClassLoader());
    this.jar = jar;
    this.hooks = hooks;
    this.domain = new ProtectionDomain(new CodeSource(null, (Certificate[]) null), null, this, null);
  }

  @Override
  protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
    if (name.startsWith(HOOKS)) {
      return hooks.loadClass(name); // one copy of the hooks: the one the libraries' code calls
    }
    return super.loadClass(name, resolve);
  }

  @Override
  protected Class<?> findClass(String name) throws ClassNotFoundException {
    byte[] bytes = read(PREFIX + name.replace('.', '/') + ".classdata");
    if (bytes == null) {
      throw new ClassNotFoundException(name);
    }
    return defineClass(name, bytes, 0, bytes.length, domain);
  }

  /** The agent's class files as resources too: Byte Buddy reads its advice classes' bytes this way. */
  @Override
  public InputStream getResourceAsStream(String name) {
    if (name.endsWith(".class")) {
      byte[] bytes = read(PREFIX + name.substring(0, name.length() - ".class".length()) + ".classdata");
      if (bytes != null) {
        return new ByteArrayInputStream(bytes);
      }
    }
    return super.getResourceAsStream(name);
  }

  private byte[] read(String entry) {
    ZipEntry e = jar.getEntry(entry);
    if (e == null) {
      return null;
    }
    try (InputStream in = jar.getInputStream(e)) {
      return in.readAllBytes();
    } catch (IOException ex) {
      throw new UncheckedIOException("cannot read " + entry + " from the agent's jar " + jar.getName(), ex);
    }
  }
}
