package dev.thaw.examples.ortserver;

import com.fasterxml.jackson.core.JsonGenerator;
import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.MapEntry;
import com.google.protobuf.Message;
import java.io.IOException;
import java.util.Base64;
import java.util.List;

/**
 * A protobuf message as JSON the way Triton prints a model configuration: proto field names, every field without
 * presence printed even at its default ({@code "max_batch_size": 0}, {@code "input": []}), unset message fields and
 * oneof members left out, enums by name, and 64-bit integers as JSON numbers (Triton converts them back from the
 * strings protobuf's printer makes, so {@code "dims": [16]}, not {@code ["16"]}).
 *
 * <p>Written here rather than taken from protobuf-java-util's JsonFormat: that library is not a dependency of the
 * server, and its int64-as-string output would need undoing anyway.
 */
final class ProtoJson {
  private ProtoJson() {}

  static void write(JsonGenerator g, Message message) throws IOException {
    g.writeStartObject();
    for (FieldDescriptor field : message.getDescriptorForType().getFields()) {
      boolean present = field.isRepeated() || !field.hasPresence() || message.hasField(field);
      if (!present) {
        continue; // an unset message field or oneof member
      }
      g.writeFieldName(field.getName());
      if (field.isMapField()) {
        g.writeStartObject();
        for (Object o : (List<?>) message.getField(field)) {
          MapEntry<?, ?> entry = (MapEntry<?, ?>) o;
          g.writeFieldName(String.valueOf(entry.getKey()));
          value(g, field.getMessageType().findFieldByName("value"), entry.getValue());
        }
        g.writeEndObject();
      } else if (field.isRepeated()) {
        g.writeStartArray();
        for (Object o : (List<?>) message.getField(field)) {
          value(g, field, o);
        }
        g.writeEndArray();
      } else {
        value(g, field, message.getField(field));
      }
    }
    g.writeEndObject();
  }

  private static void value(JsonGenerator g, FieldDescriptor field, Object v) throws IOException {
    switch (field.getJavaType()) {
      case INT -> {
        boolean unsigned = field.getType() == FieldDescriptor.Type.UINT32
            || field.getType() == FieldDescriptor.Type.FIXED32;
        g.writeNumber(unsigned ? Integer.toUnsignedLong((Integer) v) : (Integer) v);
      }
      case LONG -> {
        long l = (Long) v;
        boolean unsigned = field.getType() == FieldDescriptor.Type.UINT64
            || field.getType() == FieldDescriptor.Type.FIXED64;
        if (unsigned && l < 0) {
          g.writeNumber(Long.toUnsignedString(l));
        } else {
          g.writeNumber(l);
        }
      }
      case FLOAT -> g.writeNumber((Float) v);
      case DOUBLE -> g.writeNumber((Double) v);
      case BOOLEAN -> g.writeBoolean((Boolean) v);
      case STRING -> g.writeString((String) v);
      case BYTE_STRING -> g.writeString(Base64.getEncoder().encodeToString(((ByteString) v).toByteArray()));
      case ENUM -> g.writeString(((EnumValueDescriptor) v).getName());
      case MESSAGE -> write(g, (Message) v);
    }
  }
}
