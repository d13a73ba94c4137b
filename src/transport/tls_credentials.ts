/**
 * The server certificate, as PEM text every runtime's TLS takes: from PEM
 * files (`ssl.cert-file`, `ssl.key-file`, `ssl.ca-file`) or from the
 * original's PKCS#12 key store (`ssl.key-store-location`, `-password`,
 * `-type`). A missing file or a wrong password is a `TlsConfigError` naming
 * the key. Runtime-free: the runtime's `readFile` is passed in.
 *
 * PKCS#12 is decoded with node-forge: neither Deno's TLS (rustls) nor Bun's
 * Bun's listen() takes a `pfx`, and the runtimes' `node:crypto` cannot open one.
 * forge handles OpenSSL 3's default (PBES2, AES-256-CBC, HMAC-SHA256) and
 * Java keytool's PKCS#12 stores.
 */
import { clientAuthProblem, keyStoreTypeProblem } from "../config/listening.ts";
import type forgeTypes from "node-forge";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { MqttxConfig } from "../config/types.ts";
import type { TlsCredentials } from "../runtime/types.ts";

export class TlsConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = "TlsConfigError";
  }
}

export type ReadFile = (path: string) => Promise<Uint8Array>;

/** The files a reload watches for changes (PEM files, or the key store). */
export function credentialFiles(ssl: MqttxConfig["ssl"]): string[] {
  const files = ssl.certFile !== undefined
    ? [ssl.certFile, ssl.keyFile!]
    : [keyStorePath(ssl.keyStoreLocation)];
  if (ssl.caFile !== undefined) files.push(ssl.caFile);
  return files;
}

export async function loadTlsCredentials(
  ssl: MqttxConfig["ssl"],
  readFile: ReadFile,
): Promise<TlsCredentials> {
  let creds: TlsCredentials;
  if (ssl.certFile !== undefined && ssl.keyFile !== undefined) {
    creds = {
      cert: await readPem(readFile, "ssl.cert-file", ssl.certFile, "CERTIFICATE"),
      key: await readPem(readFile, "ssl.key-file", ssl.keyFile, "PRIVATE KEY"),
    };
    checkPair(creds, "ssl.cert-file", "ssl.key-file", `${ssl.certFile} and ${ssl.keyFile}`);
  } else {
    creds = await readKeyStore(ssl, readFile);
    const store = keyStorePath(ssl.keyStoreLocation);
    checkPair(creds, "ssl.key-store-location", "ssl.key-store-location", store);
  }
  if (ssl.caFile !== undefined) {
    creds.ca = await readPem(readFile, "ssl.ca-file", ssl.caFile, "CERTIFICATE");
  } else {
    const problem = clientAuthProblem(ssl);
    if (problem) throw new TlsConfigError("ssl.ca-file", problem);
  }
  return creds;
}

/**
 * The certificate parses and the key is its own: caught here with the key's
 * name, rather than as a vague TLS error (or not at all: Deno's
 * `setSecureContext` takes a mismatched pair without complaint).
 */
function checkPair(c: TlsCredentials, certKey: string, keyKey: string, where: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(c.cert);
  } catch (e) {
    throw new TlsConfigError(certKey, `no valid certificate in ${where}: ${messageOf(e)}`);
  }
  let ok: boolean;
  try {
    ok = cert.checkPrivateKey(createPrivateKey(c.key));
  } catch (e) {
    throw new TlsConfigError(
      keyKey,
      `no usable private key in ${where} (encrypted PEM keys are not supported): ${messageOf(e)}`,
    );
  }
  if (!ok) {
    throw new TlsConfigError(keyKey, `the private key does not match the certificate (${where})`);
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function readBytes(readFile: ReadFile, key: string, path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new TlsConfigError(key, `cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

async function readPem(
  readFile: ReadFile,
  key: string,
  path: string,
  what: string,
): Promise<string> {
  const text = new TextDecoder().decode(await readBytes(readFile, key, path));
  if (!text.includes("-----BEGIN ") || !text.includes(what)) {
    throw new TlsConfigError(key, `${path} is not a PEM file with a ${what}`);
  }
  return text;
}

/** "classpath:tls/mqttx.keystore" (the original's default) is read relative to the working directory. */
function keyStorePath(location: string): string {
  return location.startsWith("classpath:") ? location.slice("classpath:".length) : location;
}

async function readKeyStore(
  ssl: MqttxConfig["ssl"],
  readFile: ReadFile,
): Promise<TlsCredentials> {
  const problem = keyStoreTypeProblem(ssl);
  if (problem) throw new TlsConfigError("ssl.key-store-type", problem);
  const path = keyStorePath(ssl.keyStoreLocation);
  const bytes = await readBytes(readFile, "ssl.key-store-location", path);
  // Loaded only for a PKCS#12 key store: a broker without one does not pay
  // for node-forge at start-up nor keep it in memory.
  const forge = (await import("node-forge")).default as typeof forgeTypes;
  let p12: forgeTypes.pkcs12.Pkcs12Pfx;
  try {
    const der = forge.util.createBuffer(bytesToBinary(bytes));
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der), ssl.keyStorePassword);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/password|MAC|decrypt/i.test(msg)) {
      throw new TlsConfigError(
        "ssl.key-store-password",
        `wrong password for key store ${path} (${msg})`,
      );
    }
    throw new TlsConfigError(
      "ssl.key-store-location",
      `${path} is not a PKCS#12 key store: ${msg}`,
    );
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[
      forge.pki.oids.pkcs8ShroudedKeyBag
    ] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
  const keyBag = keyBags[0];
  if (!keyBag || certBags.length === 0) {
    throw new TlsConfigError(
      "ssl.key-store-location",
      `${path} holds no private key with its certificate`,
    );
  }
  // The server's certificate shares the key's localKeyId; the rest is its chain.
  const keyId = keyBag.attributes?.localKeyId?.[0];
  const leafIndex = Math.max(0, certBags.findIndex((b) => b.attributes?.localKeyId?.[0] === keyId));
  const ordered = [certBags[leafIndex], ...certBags.filter((_, i) => i !== leafIndex)];
  const cert = ordered.map((b) =>
    b.cert ? forge.pki.certificateToPem(b.cert) : derPem(forge, "CERTIFICATE", b.asn1!)
  ).join("");
  const keyAsn1 = keyBag.key
    ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(keyBag.key))
    : keyBag.asn1!;
  return { cert, key: derPem(forge, "PRIVATE KEY", keyAsn1) };
}

function derPem(forge: typeof forgeTypes, type: string, node: forgeTypes.asn1.Asn1): string {
  return forge.pem.encode({ type, body: forge.asn1.toDer(node).getBytes() });
}

function bytesToBinary(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}
