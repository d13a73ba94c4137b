/**
 * The client side of SCRAM-SHA-256 (RFC 5802/7677), written from the RFC for
 * the auth tests: `first()` is the client-first message, `final()` answers the
 * server-first message, `verify()` checks the server's signature.
 */
import { b64, hmac, saltedPassword, sha256, unb64, xor } from "../../src/auth/credential.ts";

const text = (s: string) => new TextEncoder().encode(s);

export class ScramClient {
  readonly nonce = b64(crypto.getRandomValues(new Uint8Array(18)));
  private bare = "";
  private serverSignature = "";
  constructor(readonly user: string, readonly password: string) {}

  first(): string {
    this.bare = `n=${this.user.replaceAll("=", "=3D").replaceAll(",", "=2C")},r=${this.nonce}`;
    return `n,,${this.bare}`;
  }

  /** The client-final message; `password` overrides the constructor's (to send a wrong proof). */
  async final(serverFirst: string, password = this.password): Promise<string> {
    const attrs = Object.fromEntries(serverFirst.split(",").map((a) => [a[0], a.slice(2)]));
    if (!attrs.r?.startsWith(this.nonce)) throw new Error("the server nonce must extend ours");
    const salted = await saltedPassword(text(password), unb64(attrs.s)!, Number(attrs.i));
    const clientKey = await hmac(salted, "Client Key");
    const withoutProof = `c=biws,r=${attrs.r}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const signature = await hmac(await sha256(clientKey), authMessage);
    this.serverSignature = b64(await hmac(await hmac(salted, "Server Key"), authMessage));
    return `${withoutProof},p=${b64(xor(clientKey, signature))}`;
  }

  /** The server proved it knows our credential. */
  verify(serverFinal: string): boolean {
    return this.serverSignature !== "" && serverFinal === `v=${this.serverSignature}`;
  }
}
