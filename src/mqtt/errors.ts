/**
 * The one error type the codec throws. It carries the MQTT 5 reason code the
 * broker should send in DISCONNECT (0x81 malformed, 0x82 protocol error,
 * 0x95 packet too large, ...) and the byte offset within the packet.
 * Messages read like "Cannot decode SUBSCRIBE: topic filter is empty".
 */
export class MqttSyntaxError extends Error {
  readonly reasonCode: number;
  readonly offset: number;
  constructor(message: string, reasonCode = 0x81, offset = -1) {
    super(message);
    this.name = "MqttSyntaxError";
    this.reasonCode = reasonCode;
    this.offset = offset;
  }
}
