/**
 * MQTT 5.0 helpers for interop tests with the mosquitto command-line clients:
 * a `mosquitto_sub -F` format that prints the 5.0 message properties, its
 * parser, and "publish until the subscriber has exited" returning raw output.
 *
 * mosquitto_sub fully buffers stdout on a pipe (see ./mosquitto.ts), so a
 * test learns what arrived only when the subscriber exits (`-C n`).
 */
import type { Finished, Proc, Procs } from "./mosquitto.ts";
import { WAIT_MS } from "./mqttjs.ts";

/**
 * topic|qos|retain|expiry|content type|response topic|correlation data|
 * payload format|topic alias|user properties|payload — payload last, so it may hold "|".
 */
export const FORMAT5 = "%t|%q|%r|%E|%C|%R|%D|%F|%A|%P|%p";

export interface SubLine5 {
  topic: string;
  qos: number;
  retain: boolean;
  /** Message Expiry Interval, if present. */
  expiry?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: string;
  payloadFormat?: number;
  /** The Topic Alias the broker used, if any (the topic is still printed resolved). */
  topicAlias?: number;
  /** User properties in the order received; mosquitto_sub prints "k:v k:v". */
  userProperties: [string, string][];
  payload: string;
}

/** Parses `mosquitto_sub -F FORMAT5` output. */
export function parseSub5(stdout: string): SubLine5[] {
  return stdout.split("\n").filter((l) => l.length > 0).map((line) => {
    const [topic, qos, retain, e, c, r, d, f, a, p, ...rest] = line.split("|");
    const opt = (s: string) => (s === "" ? undefined : s);
    const num = (s: string) => (s === "" ? undefined : Number(s));
    return {
      topic,
      qos: Number(qos),
      retain: retain === "1",
      expiry: num(e),
      contentType: opt(c),
      responseTopic: opt(r),
      correlationData: opt(d),
      payloadFormat: num(f),
      topicAlias: num(a),
      userProperties: p === "" ? [] : p.split(" ").map((kv) => {
        const i = kv.indexOf(":");
        return [kv.slice(0, i), kv.slice(i + 1)] as [string, string];
      }),
      payload: rest.join("|"),
    };
  });
}

/**
 * Runs `mosquitto_pub pubArgs` every `everyMs` until `sub` exits (started with
 * `-C n`); returns what it printed. Fails on a non-zero exit or after `ms`.
 */
export function publishUntilExit(
  procs: Procs,
  sub: Proc,
  pubArgs: string[],
  ms = WAIT_MS,
  everyMs = 200,
): Promise<Finished> {
  return publishRoundsUntilExit(procs, sub, [pubArgs], ms, everyMs);
}

/** Like `publishUntilExit`, running one `mosquitto_pub` per entry of `rounds` each time. */
export async function publishRoundsUntilExit(
  procs: Procs,
  sub: Proc,
  rounds: string[][],
  ms = WAIT_MS,
  everyMs = 200,
): Promise<Finished> {
  const deadline = Date.now() + ms;
  while (!sub.exited && Date.now() < deadline) {
    for (const args of rounds) await procs.run("mosquitto_pub", args);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([sub.done, new Promise((r) => (timer = setTimeout(r, everyMs)))]);
    clearTimeout(timer);
  }
  const r = await procs.wait(sub, "mosquitto_sub to receive its messages", 500);
  if (r.code !== 0) throw new Error(`mosquitto_sub exited with ${r.code}: ${r.stderr.trim()}`);
  return r;
}
