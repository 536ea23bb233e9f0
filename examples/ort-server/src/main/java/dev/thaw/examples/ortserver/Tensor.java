package dev.thaw.examples.ortserver;

import java.nio.ByteBuffer;

/**
 * A named tensor as it travels between the protocols and the model: the datatype as the protocol names it ("FP32";
 * a request may name a type the model does not take, which validation reports), the full shape (with the batch
 * dimension), and the elements as little-endian, row-major bytes from {@code data.position()} to its limit.
 */
record Tensor(String name, String datatype, long[] shape, ByteBuffer data) {

  /** The number of elements the shape holds, or -1 when a dimension is negative or the product overflows. */
  static long elementCount(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        return -1;
      }
      try {
        n = Math.multiplyExact(n, d);
      } catch (ArithmeticException e) {
        return -1;
      }
    }
    return n;
  }

  /** A shape as Triton prints it in errors: {@code [-1,256]}. */
  static String shapeString(long[] shape) {
    StringBuilder s = new StringBuilder("[");
    for (int i = 0; i < shape.length; i++) {
      if (i > 0) {
        s.append(',');
      }
      s.append(shape[i]);
    }
    return s.append(']').toString();
  }
}
