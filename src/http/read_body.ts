/** A request's or response's body, read with a cap (the admin API, the HTTP auth service). */

/** The body as text, or undefined once it passes `max` bytes (the rest is not read). */
export async function readBody(res: Request | Response, max: number): Promise<string | undefined> {
  if (!res.body) return "";
  if (Number(res.headers.get("content-length")) > max) {
    await res.body.cancel();
    return undefined;
  }
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    parts.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return new TextDecoder().decode(all);
}
