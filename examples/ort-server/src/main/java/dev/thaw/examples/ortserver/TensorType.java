package dev.thaw.examples.ortserver;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.triton.protocol.DataType;
import dev.thaw.triton.protocol.InferTensorContents;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The tensor element types the server converts: their protocol names ("FP32"), config names ({@code TYPE_FP32}) and
 * how one element travels as JSON and as gRPC typed contents. Raw and binary tensor data need no conversion: they are
 * the little-endian bytes ONNX Runtime takes. Types ONNX Runtime's Java API cannot hold (UINT16 and up, FP16, BF16,
 * BYTES) are refused when a model is loaded.
 */
enum TensorType {
  BOOL("BOOL", DataType.TYPE_BOOL, 1),
  UINT8("UINT8", DataType.TYPE_UINT8, 1),
  INT8("INT8", DataType.TYPE_INT8, 1),
  INT16("INT16", DataType.TYPE_INT16, 2),
  INT32("INT32", DataType.TYPE_INT32, 4),
  INT64("INT64", DataType.TYPE_INT64, 8),
  FP32("FP32", DataType.TYPE_FP32, 4),
  FP64("FP64", DataType.TYPE_FP64, 8);

  final String protocolName;
  final DataType configType;
  final int byteSize;

  TensorType(String protocolName, DataType configType, int byteSize) {
    this.protocolName = protocolName;
    this.configType = configType;
    this.byteSize = byteSize;
  }

  /** The type a request names ("FP32"), or null when the server has no such type. */
  static TensorType fromProtocol(String name) {
    for (TensorType t : values()) {
      if (t.protocolName.equals(name)) {
        return t;
      }
    }
    return null;
  }

  /** The type a config names ({@code TYPE_FP32}), or null when the server has no such type. */
  static TensorType fromConfig(DataType type) {
    for (TensorType t : values()) {
      if (t.configType == type) {
        return t;
      }
    }
    return null;
  }

  /** The protocol name of any config type, as Triton prints it in errors: TYPE_STRING is "BYTES". */
  static String protocolName(DataType type) {
    if (type == DataType.TYPE_STRING) {
      return "BYTES";
    }
    String name = type.name();
    return name.startsWith("TYPE_") ? name.substring(5) : name;
  }

  /**
   * Appends one JSON element to {@code out}.
   *
   * @throws IllegalArgumentException when the element is not a value of this type
   */
  void putJson(ByteBuffer out, JsonNode v) {
    switch (this) {
      case BOOL -> {
        if (!v.isBoolean()) {
          throw new IllegalArgumentException("expected a boolean, got " + v);
        }
        out.put((byte) (v.booleanValue() ? 1 : 0));
      }
      case UINT8 -> out.put((byte) integral(v, 0, 255));
      case INT8 -> out.put((byte) integral(v, Byte.MIN_VALUE, Byte.MAX_VALUE));
      case INT16 -> out.putShort((short) integral(v, Short.MIN_VALUE, Short.MAX_VALUE));
      case INT32 -> out.putInt((int) integral(v, Integer.MIN_VALUE, Integer.MAX_VALUE));
      case INT64 -> out.putLong(integral(v, Long.MIN_VALUE, Long.MAX_VALUE));
      case FP32 -> out.putFloat((float) number(v));
      case FP64 -> out.putDouble(number(v));
    }
  }

  /** Writes element {@code index} of little-endian {@code data} as a JSON value. */
  void writeJson(JsonGenerator g, ByteBuffer data, int index) throws IOException {
    int at = index * byteSize;
    switch (this) {
      case BOOL -> g.writeBoolean(data.get(at) != 0);
      case UINT8 -> g.writeNumber(data.get(at) & 0xff);
      case INT8 -> g.writeNumber(data.get(at));
      case INT16 -> g.writeNumber(data.getShort(at));
      case INT32 -> g.writeNumber(data.getInt(at));
      case INT64 -> g.writeNumber(data.getLong(at));
      case FP32 -> g.writeNumber(data.getFloat(at));
      case FP64 -> g.writeNumber(data.getDouble(at));
    }
  }

  /** How many elements typed contents hold in this type's list (Triton reads only the list of the datatype). */
  int typedCount(InferTensorContents c) {
    return switch (this) {
      case BOOL -> c.getBoolContentsCount();
      case UINT8 -> c.getUintContentsCount();
      case INT8, INT16, INT32 -> c.getIntContentsCount();
      case INT64 -> c.getInt64ContentsCount();
      case FP32 -> c.getFp32ContentsCount();
      case FP64 -> c.getFp64ContentsCount();
    };
  }

  /** Appends typed contents to {@code out} as little-endian elements. */
  void putTyped(ByteBuffer out, InferTensorContents c) {
    int n = typedCount(c);
    for (int i = 0; i < n; i++) {
      switch (this) {
        case BOOL -> out.put((byte) (c.getBoolContents(i) ? 1 : 0));
        case UINT8 -> out.put((byte) c.getUintContents(i));
        case INT8 -> out.put((byte) c.getIntContents(i));
        case INT16 -> out.putShort((short) c.getIntContents(i));
        case INT32 -> out.putInt(c.getIntContents(i));
        case INT64 -> out.putLong(c.getInt64Contents(i));
        case FP32 -> out.putFloat(c.getFp32Contents(i));
        case FP64 -> out.putDouble(c.getFp64Contents(i));
      }
    }
  }

  private static long integral(JsonNode v, long min, long max) {
    if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < min || v.longValue() > max) {
      throw new IllegalArgumentException("expected an integer in [" + min + ", " + max + "], got " + v);
    }
    return v.longValue();
  }

  private static double number(JsonNode v) {
    if (!v.isNumber()) {
      throw new IllegalArgumentException("expected a number, got " + v);
    }
    return v.doubleValue();
  }
}
