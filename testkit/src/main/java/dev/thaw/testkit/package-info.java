/**
 * Real servers that tests and benchmarks of several modules start on loopback: {@link dev.thaw.testkit.EtcdCluster}
 * (etcd), {@link dev.thaw.testkit.NginxServer} (an HTTP origin), {@link dev.thaw.testkit.S3ProxyServer} (an S3
 * origin in this JVM), {@link dev.thaw.testkit.ThrottlingProxy} (an object store's per-connection pace), and
 * {@link dev.thaw.testkit.FreePorts}. Test scope only: nothing the product ships depends on it, and it depends on no
 * Thaw module, so any module's tests can use it.
 */
package dev.thaw.testkit;
