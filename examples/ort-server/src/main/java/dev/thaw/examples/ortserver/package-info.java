/**
 * A small, real inference server that stands in for Triton where Triton cannot run: ONNX Runtime (CPU) sessions
 * behind Triton's gRPC service and HTTP/REST v2 protocol, serving a Triton-layout model repository; and a generator
 * of ONNX multilayer perceptrons of any size with their weights in external data files.
 *
 * <p>Thaw uses it to measure what it exists to shorten: the time from a cold start to the first inference, and later
 * CRIU checkpoint and restore of a warmed server. Entry points: {@link dev.thaw.examples.ortserver.OrtServer}
 * (the server, {@code main} and {@code start}), {@link dev.thaw.examples.ortserver.ServerOptions} (its flags), and
 * {@link dev.thaw.examples.ortserver.MlpGenerator} with {@link dev.thaw.examples.ortserver.MlpSpec} (test models).
 * Everything else is package-private.
 *
 * <p>It depends on ONNX Runtime, gRPC, protobuf, Jackson and Thaw's triton-protocol module only; it must never
 * depend on Thaw's store, FUSE mount or sidecar: it is the unmodified "application" those are measured against.
 */
package dev.thaw.examples.ortserver;
