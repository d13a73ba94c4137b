/** The MQTT codec's public face: packet types, decoder, encoder, reason codes. */
export * from "./packet.ts";
export { MqttSyntaxError } from "./errors.ts";
export { type DecoderOptions, MAX_PACKET_SIZE, PacketDecoder } from "./decoder.ts";
export { encode, encodedLength } from "./encoder.ts";
export { ConnackV3, ReasonCode, SubackV3Failure, validReasonCodes } from "./reason_codes.ts";
