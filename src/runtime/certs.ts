/** The client certificate as hooks see it (`ClientInfo.certificate`), from a node-style peer certificate. */
import type { Conn } from "./types.ts";

export interface NodeStylePeerCertificate {
  subject?: Record<string, string | string[] | undefined>;
  fingerprint256?: string;
}

export function peerCertificate(cert: NodeStylePeerCertificate): Conn["peerCertificate"] {
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
