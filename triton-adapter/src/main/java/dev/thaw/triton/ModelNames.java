package dev.thaw.triton;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;

/** Reads the model a Triton request names from its bytes, without parsing the rest (a tensor may be large). */
final class ModelNames {
  private ModelNames() {}

  /** The string in field {@code number} of the protobuf message {@code message}; null when absent or unreadable. */
  static String field(byte[] message, int number) {
    return field(CodedInputStream.newInstance(message), number);
  }

  /** As {@link #field(byte[], int)}, reading {@code message} only as far as the field. */
  static String field(java.io.InputStream message, int number) {
    return field(CodedInputStream.newInstance(message, 256), number);
  }

  private static String field(CodedInputStream in, int number) {
    try {
      while (true) {
        int tag = in.readTag();
        if (tag == 0) {
          return null;
        }
        if (WireFormat.getTagFieldNumber(tag) == number
            && WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
          return in.readStringRequireUtf8();
        }
        if (!in.skipField(tag)) {
          return null;
        }
      }
    } catch (IOException e) {
      return null; // not a message Thaw can read: Triton will say what is wrong with it
    }
  }
}
