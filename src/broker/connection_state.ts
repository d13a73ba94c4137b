/**
 * The yes/no state of a Connection, as bits of one number: an idle
 * connection stays small. Connection extends this.
 */

const CONNECTED = 1;
const CLOSING = 2;
const PUBLISH_WILL = 4;
const WRITING = 8;
const FLUSH_SCHEDULED = 16;
const FINISHED = 32;
const LINGERING = 64;

export class ConnectionState {
  private state = PUBLISH_WILL;

  /** True once CONNACK (success) was sent. */
  get connected(): boolean {
    return (this.state & CONNECTED) !== 0;
  }
  set connected(v: boolean) {
    this.setState(CONNECTED, v);
  }
  /** No more input is processed once closing. */
  get closing(): boolean {
    return (this.state & CLOSING) !== 0;
  }
  set closing(v: boolean) {
    this.setState(CLOSING, v);
  }
  /** Publish the will when the connection ends (cleared by DISCONNECT) [MQTT-3.1.2-8]. */
  get publishWillOnClose(): boolean {
    return (this.state & PUBLISH_WILL) !== 0;
  }
  set publishWillOnClose(v: boolean) {
    this.setState(PUBLISH_WILL, v);
  }
  /** The transport has our output buffer (an asynchronous write is pending). */
  protected get writing(): boolean {
    return (this.state & WRITING) !== 0;
  }
  protected set writing(v: boolean) {
    this.setState(WRITING, v);
  }
  /** In this tick's list of connections to flush. */
  protected get flushScheduled(): boolean {
    return (this.state & FLUSH_SCHEDULED) !== 0;
  }
  protected set flushScheduled(v: boolean) {
    this.setState(FLUSH_SCHEDULED, v);
  }
  /** The broker was told this connection is gone (the input ended). */
  protected get finished(): boolean {
    return (this.state & FINISHED) !== 0;
  }
  protected set finished(v: boolean) {
    this.setState(FINISHED, v);
  }
  /** Our side is half-closed: input is read and discarded until the peer closes. */
  protected get lingering(): boolean {
    return (this.state & LINGERING) !== 0;
  }
  protected set lingering(v: boolean) {
    this.setState(LINGERING, v);
  }
  private setState(bit: number, on: boolean): void {
    this.state = on ? this.state | bit : this.state & ~bit;
  }
}
