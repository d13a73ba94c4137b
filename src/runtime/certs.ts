/** The client certificate as hooks see it (`ClientInfo.certificate`), from a node-style peer certificate. */
import type { PeerCertificate } from "./types.ts";
import { X509Certificate } from "node:crypto";

export interface NodeStylePeerCertificate {
  subject?: Record<string, string | string[] | undefined>;
  fingerprint256?: string;
  /** DER bytes. */
  raw?: Uint8Array;
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

/** The certificates of a PEM bundle (a `ca-file`). */
export function parseCaBundle(pem: string | undefined): X509Certificate[] {
  const blocks = pem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  return (blocks ?? []).map((b) => new X509Certificate(b));
}

/**
 * Our own check of a client certificate the TLS library did not verify:
 * issued and signed by one of `cas`, and valid now. Deno's TLS (rustls)
 * refuses X.509 v1 certificates, which OpenSSL (Bun, Mosquitto) accepts.
 */
export function issuedByCa(raw: Uint8Array, cas: readonly X509Certificate[]): boolean {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(raw);
  } catch {
    return false;
  }
  const now = Date.now();
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) return false;
  return cas.some((ca) => {
    try {
      return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
    } catch {
      return false;
    }
  });
}
