/** The client certificate as hooks see it (`ClientInfo.certificate`), from a node-style peer certificate. */
import type { PeerCertificate } from "./types.ts";

export interface NodeStylePeerCertificate {
  subject?: Record<string, string | string[] | undefined>;
  fingerprint256?: string;
}

export function peerCertificate(cert: NodeStylePeerCertificate): PeerCertificate | undefined {
  const subject = cert.subject ?? {};
  const cn = subject.CN;
  return {
    subject: Object.entries(subject)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : v ?? ""}`)
      .join(", "),
    commonName: Array.isArray(cn) ? cn[0] : cn,
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * What a TLS listener does with a client, from the handshake's verdict: the
 * verified certificate, undefined for none, or false to refuse the client.
 * NONE asks for nothing; OPTIONAL accepts no certificate but not a bad one;
 * REQUIRE needs a verified one.
 */
export function clientCertificate(
  auth: "NONE" | "OPTIONAL" | "REQUIRE",
  authorized: boolean,
  cert: NodeStylePeerCertificate | null | undefined,
): PeerCertificate | undefined | false {
  if (auth === "NONE") return undefined;
  // node:tls reports "no certificate" as an empty object.
  const presented = cert !== undefined && cert !== null && cert.subject !== undefined &&
    Object.keys(cert).length > 0;
  if (authorized && presented) return peerCertificate(cert);
  return auth === "OPTIONAL" && !presented ? undefined : false;
}
