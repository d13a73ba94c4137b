/**
 * What a Connection holds besides its hot path: the yes/no state as bits of
 * one number, and the rarely used state (5.0 limits and aliases, enhanced
 * authentication, drain waiters) in an object made on first use, so an idle
 * connection stays small. Connection extends this.
 */
import type { EnhancedAuthenticator, EnhancedAuthSession, PeerCertificate } from "./hooks.ts";
import type { ConnectPacket, ProtocolVersion } from "../mqtt/packet.ts";
import type { ReadRightsCache } from "./read_rights.ts";

/** An enhanced-authentication exchange in progress or completed (5.0, 4.12). */
export interface AuthState {
  readonly authenticator: EnhancedAuthenticator;
  session: EnhancedAuthSession | undefined;
  /** The CONNECT waiting for the exchange to finish; undefined during re-authentication. */
  connect: ConnectPacket | undefined;
  assigned: boolean;
}

const CONNECTED = 1;
const CLOSING = 2;
const PUBLISH_WILL = 4;
const WRITING = 8;
const FLUSH_SCHEDULED = 16;
const FINISHED = 32;
const LINGERING = 64;
/** Bits from here up hold the index of the listener the connection came in on. */
const LISTENER_SHIFT = 8;

export class ConnectionState {
  private state = PUBLISH_WILL;
  /** Rarely used state, made on first use. */
  protected x: ConnectionExtras | undefined = undefined;
  /** Protocol level; 4 until CONNECT says otherwise. */
  version: ProtocolVersion = 4;
  /** Set at CONNECT (identify()); "" before. */
  clientId = "";
  /** The user name the client authenticated as (ClientInfo). */
  username: string | undefined = undefined;

  /** CONNECT named the client (its id never "": the broker assigns one to an empty id). */
  identify(clientId: string, username: string | undefined): void {
    this.clientId = clientId;
    this.username = username;
  }

  /** ClientInfo: the protocol level of the CONNECT. */
  get protocolVersion(): ProtocolVersion {
    return this.version;
  }

  /** Enhanced authentication of this connection, when it used one. */
  get auth(): AuthState | undefined {
    return this.x?.auth;
  }
  set auth(v: AuthState | undefined) {
    (this.x ??= {}).auth = v;
  }

  /** 5.0 client → server topic aliases [MQTT-3.3.2-10]. */
  get topicAliases(): Map<number, string> | undefined {
    return this.x?.topicAliases;
  }
  set topicAliases(v: Map<number, string> | undefined) {
    (this.x ??= {}).topicAliases = v;
  }

  /** 5.0 server → client aliases given so far. */
  get outAliases(): Map<string, number> | undefined {
    return this.x?.outAliases;
  }
  set outAliases(v: Map<string, number> | undefined) {
    (this.x ??= {}).outAliases = v;
  }

  /**
   * 5.0 limits the client announced at CONNECT. Kept in the extras, and only
   * when one differs from the default: most clients announce none.
   */
  setClientLimits(
    receiveMaximum: number,
    maximumPacketSize: number,
    outAliasMaximum: number,
  ): void {
    if (receiveMaximum === 65535 && maximumPacketSize === 0 && outAliasMaximum === 0) return;
    const x = this.x ??= {};
    x.receiveMaximum = receiveMaximum;
    x.maximumPacketSize = maximumPacketSize;
    x.outAliasMaximum = outAliasMaximum;
  }
  get clientReceiveMaximum(): number {
    return this.x?.receiveMaximum ?? 65535;
  }
  /** 0: no limit. */
  get clientMaximumPacketSize(): number {
    return this.x?.maximumPacketSize ?? 0;
  }
  /** 5.0 server → client topic aliases, up to the client's Topic Alias Maximum. */
  get outAliasMaximum(): number {
    return this.x?.outAliasMaximum ?? 0;
  }

  /** ClientInfo: per-client topic rights from authentication, when it gave any. */
  get authorizedSub(): string[] | undefined {
    return this.x?.authorizedSub;
  }
  set authorizedSub(v: string[] | undefined) {
    if (v || this.x) (this.x ??= {}).authorizedSub = v;
  }
  get authorizedPub(): string[] | undefined {
    return this.x?.authorizedPub;
  }
  set authorizedPub(v: string[] | undefined) {
    if (v || this.x) (this.x ??= {}).authorizedPub = v;
  }

  /** Read rights answered for this connection's client (see read_rights.ts); reset when they change. */
  get readRights(): ReadRightsCache | undefined {
    return this.x?.readRights;
  }
  set readRights(v: ReadRightsCache | undefined) {
    if (v || this.x) (this.x ??= {}).readRights = v;
  }

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
  /** Index of the listener it came in on (kept in `state`: an idle connection stays small). */
  get listener(): number {
    return this.state >>> LISTENER_SHIFT;
  }
  set listener(index: number) {
    this.state = (this.state & ((1 << LISTENER_SHIFT) - 1)) | (index << LISTENER_SHIFT);
  }
  private setState(bit: number, on: boolean): void {
    this.state = on ? this.state | bit : this.state & ~bit;
  }
}

export interface ConnectionExtras {
  receiveMaximum?: number;
  maximumPacketSize?: number;
  outAliasMaximum?: number;
  auth?: AuthState;
  topicAliases?: Map<number, string>;
  outAliases?: Map<string, number>;
  readRights?: ReadRightsCache;
  authorizedSub?: string[];
  authorizedPub?: string[];
  certificate?: PeerCertificate;
  drained?: (() => void)[];
  linger?: ReturnType<typeof setTimeout>;
  /** Input left for a later turn (input_turns.ts): the chunk, and where to go on in it. */
  rest?: Uint8Array;
  restPos?: number;
  /** Settles the promise the transport waits on while input is left for later. */
  wake?: () => void;
}
