/**
 * Turns the raw runs of `bench/run.ts` into a Markdown report and an SVG chart.
 * Re-render an old result file with:
 *   deno run -A bench/report.ts bench/results/2025-01-01_1200.json
 */

/** The `RESULT {...}` line of the load generator (only the fields we read are typed). */
export interface LoadgenResult {
  mode: "pubsub" | "connect-only";
  conn_ok: number;
  conn_fail: number;
  conn_ms: { p50: number; p99: number };
  pub_rate?: number;
  pub_sent?: number;
  pub_acked?: number;
  recv?: number;
  recv_expected?: number;
  recv_window_rate?: number;
  lat_us?: { n: number; p50: number; p99: number };
  lost?: number | null;
  dup?: number | null;
  dropped: number;
  proto_err: number;
  timeout: boolean;
  lg_cpu_pct: number;
  broker_cpu_pct?: number;
  broker_rss_kb_before?: number;
  broker_rss_kb_hold?: number;
  broker_rss_kb_after?: number;
  broker_kb_per_conn?: number;
  last_error?: string;
  [field: string]: unknown;
}

export interface RunRecord {
  broker: string;
  scenario: string;
  run: number;
  /** ok: exit 0; degraded: a RESULT but exit 1 (loss, failed connects...); failed: no usable RESULT. */
  status: "ok" | "degraded" | "failed";
  reason: string;
  exitCode: number | null;
  port: number;
  args: string[];
  /** From spawning the broker process to the first CONNACK on a raw socket. */
  startupMs: number | null;
  /** Broker VmRSS 1 s after that first CONNACK, before any load. */
  idleRssKb: number | null;
  /** User+system time on CPU 1 (the broker's) not spent by the broker, % of the run: other load. */
  cpu1OtherPct: number | null;
  loadavgBefore: number;
  loadavgAfter: number;
  wallS: number;
  log: string;
  result: LoadgenResult | null;
}

export interface ScenarioInfo {
  id: string;
  title: string;
  args: string[];
  metric: MetricId;
  /**
   * A load generator run on the same broker before the measured one, not measured: the
   * steady state of a JIT runtime, its compilation left out (bench/notes/warm_start.md).
   */
  warm?: string[];
}

export interface BenchFile {
  date: string;
  machine: { nproc: number; cpu: string; kernel: string; memGiB: number };
  versions: Record<string, string>;
  runs: number;
  /** The load generator's file name (mqttx-loadgen: bench/loadgen); older reports lack it. */
  loadgen?: string;
  brokers: string[];
  skipped: { broker: string; why: string }[];
  scenarios: ScenarioInfo[];
  records: RunRecord[];
}

export type MetricId = "pub" | "delivered" | "p50" | "p99" | "kbPerConn" | "startup" | "idleRss";
type Get = (r: RunRecord) => number | null | undefined;

interface Metric {
  label: string;
  higherIsBetter: boolean;
  get: Get;
  fmt(v: number): string;
}

const int = (v: number) => Math.round(v).toLocaleString("en-US");
const ms = (v: number) => v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : int(v);
const pct = (v: number) => v.toFixed(0);
const hasSubs = (r: RunRecord) => (r.result?.recv_expected ?? 0) > 0;
/** Latency in ms (lat_us is in microseconds), when there were deliveries. */
const latMs = (r: RunRecord, p: "p50" | "p99") => {
  const lat = r.result?.lat_us;
  return lat?.n ? lat[p] / 1000 : null;
};

export const METRICS: Record<MetricId, Metric> = {
  pub: { label: "pub msg/s", higherIsBetter: true, get: (r) => r.result?.pub_rate, fmt: int },
  delivered: {
    label: "delivered msg/s",
    higherIsBetter: true,
    get: (r) => hasSubs(r) ? r.result?.recv_window_rate : null,
    fmt: int,
  },
  p50: { label: "lat p50 ms", higherIsBetter: false, get: (r) => latMs(r, "p50"), fmt: ms },
  p99: { label: "lat p99 ms", higherIsBetter: false, get: (r) => latMs(r, "p99"), fmt: ms },
  kbPerConn: {
    label: "KB/connection",
    higherIsBetter: false,
    get: (r) => r.result?.broker_kb_per_conn,
    fmt: (v) => v.toFixed(2),
  },
  startup: { label: "start-up ms", higherIsBetter: false, get: (r) => r.startupMs, fmt: ms },
  idleRss: { label: "idle RSS KB", higherIsBetter: false, get: (r) => r.idleRssKb, fmt: int },
};
export const BASELINES = ["mosquitto", "aedes"];
export const MQTTX = ["mqttx-deno", "mqttx-bun", "mqttx-bin"];
/** The mqttx variants a report ran (older reports have no mqttx-bin). */
const mqttxIn = (file: BenchFile) => MQTTX.filter((m) => file.brokers.includes(m));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Values of a metric over the runs that produced a RESULT (ok or degraded). */
function values(recs: RunRecord[], get: Get): number[] {
  return recs.filter((r) => r.status !== "failed").map(get)
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
}

/** "median [min–max]" */
function cell(recs: RunRecord[], get: Get, fmt: (v: number) => string): string {
  const vs = values(recs, get);
  if (vs.length === 0) return "–";
  const med = fmt(median(vs));
  const lo = fmt(Math.min(...vs)), hi = fmt(Math.max(...vs));
  return lo === hi ? med : `${med} [${lo}–${hi}]`;
}

function medianOf(recs: RunRecord[], get: Get): number | null {
  const vs = values(recs, get);
  return vs.length ? median(vs) : null;
}

const unique = (xs: string[]) => [...new Set(xs)].join(", ");
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
const header = (cells: string[]) => [row(cells), row(cells.map(() => "---"))];

/** What went wrong in these runs, in a few words. */
function notes(recs: RunRecord[]): string {
  const out: string[] = [];
  const n = recs.length;
  const failed = recs.filter((r) => r.status === "failed");
  if (failed.length) {
    out.push(`**${failed.length}/${n} failed**: ${unique(failed.map((r) => r.reason))}`);
  }
  const degraded = recs.filter((r) => r.status === "degraded");
  if (degraded.length) {
    out.push(`${degraded.length}/${n} exit 1: ${unique(degraded.map((r) => r.reason))}`);
  }
  const got = medianOf(
    recs,
    (r) => hasSubs(r) ? (r.result!.recv ?? 0) / r.result!.recv_expected! : null,
  );
  if (got !== null && got < 0.99) {
    out.push(`received ${(got * 100).toPrecision(2)}% of the messages sent`);
  }
  const lg = medianOf(recs, (r) => r.result?.lg_cpu_pct);
  if (lg !== null && lg >= 90) out.push("load generator near 100% CPU");
  return out.join("; ");
}

function records(file: BenchFile, broker: string, scenario = "*"): RunRecord[] {
  return file.records.filter((r) =>
    r.broker === broker && (scenario === "*" || r.scenario === scenario)
  );
}

interface RatioLine {
  label: string;
  metric: Metric;
  best: { broker: string; value: number } | null;
  /** mqttx median / best baseline median, per runtime */
  ratios: Record<string, number | null>;
}

/** One line per scenario (its main metric) plus start-up and idle RSS over all fresh starts. */
function ratioLines(file: BenchFile): RatioLine[] {
  const wanted: [string, string, Metric][] = file.scenarios.map((s) => {
    const metric = METRICS[s.metric];
    return [`${s.id} ${metric.label}`, s.id, metric];
  });
  wanted.push(["start-up ms", "*", METRICS.startup], ["idle RSS KB", "*", METRICS.idleRss]);
  return wanted.map(([label, scenario, metric]) => {
    let best: RatioLine["best"] = null;
    for (const broker of BASELINES) {
      const value = medianOf(records(file, broker, scenario), metric.get);
      if (value === null || value <= 0) continue;
      if (!best || (metric.higherIsBetter ? value > best.value : value < best.value)) {
        best = { broker, value };
      }
    }
    const ratios: Record<string, number | null> = {};
    for (const m of MQTTX) {
      const v = medianOf(records(file, m, scenario), metric.get);
      ratios[m] = best && v !== null ? v / best.value : null;
    }
    return { label, metric, best, ratios };
  });
}

const lgName = (file: BenchFile) => file.loadgen ?? "mqtt-loadgen";

/**
 * Fan-in overloads the one subscriber: what each broker delivered of what it was sent by the
 * end of the run (window + drain), and what it dropped or still held (published − delivered).
 */
function deliveredAndDropped(file: BenchFile, scenario: string): string[] {
  const L = [
    "Whole run (10 s window + drain): messages the publishers sent, the subscriber received",
    "(inside the window, and in all), and the difference (dropped, or still queued when the",
    "drain gave up).",
    "",
    ...header([
      "broker",
      "published",
      "delivered in the window",
      "delivered",
      "dropped",
      "dropped %",
    ]),
  ];
  const sent = (r: RunRecord) => r.result?.recv_expected;
  const got = (r: RunRecord) => r.result?.recv;
  const lost = (r: RunRecord) => (sent(r) ?? NaN) - (got(r) ?? NaN);
  const share = (r: RunRecord) => 100 * lost(r) / (sent(r) ?? NaN);
  for (const b of file.brokers) {
    const rs = records(file, b, scenario);
    if (!rs.length) continue;
    L.push(row([
      b,
      cell(rs, sent, int),
      cell(rs, (r) => r.result?.recv_window as number | undefined, int),
      cell(rs, got, int),
      cell(rs, lost, int),
      cell(rs, share, (v) => v.toFixed(1)),
    ]));
  }
  return [...L, ""];
}

export function renderMarkdown(file: BenchFile): string {
  const { machine: m } = file;
  const loads = file.records.flatMap((r) => [r.loadavgBefore, r.loadavgAfter])
    .filter((v) => typeof v === "number" && Number.isFinite(v));
  const other = values(file.records, (r) => r.cpu1OtherPct);
  const L: string[] = [`# mqttx benchmark — ${file.date}`, ""];
  L.push(
    `- Machine: ${m.nproc} CPUs, ${m.cpu}, ${m.memGiB} GiB, Linux ${m.kernel}.`,
    `- Versions: ${Object.entries(file.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`,
    `- Method: bench/README.md — broker pinned to CPU 1, ${lgName(file)} to CPU 0, ` +
      `a fresh broker per run, ${file.runs} run(s) each; cells are median [min–max].`,
  );
  if (loads.length && other.length) {
    const range = `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`;
    L.push(
      `- Noise: 1-min load average ${range} during the runs; other work on the broker's CPU 1: ` +
        `median ${pct(median(other))}%, max ${pct(Math.max(...other))}% of a run.`,
    );
  }
  for (const s of file.skipped) L.push(`- Skipped **${s.broker}**: ${s.why}`);

  L.push("", "## Ratio mqttx / best of Mosquitto and Aedes", "");
  const mq = mqttxIn(file);
  L.push(...header(["metric", "best baseline", ...mq.map((m) => `${m} ÷ best`)]));
  for (const line of ratioLines(file)) {
    const best = line.best ? `${line.best.broker} ${line.metric.fmt(line.best.value)}` : "–";
    const ratios = mq.map((m) => line.ratios[m]?.toFixed(2) ?? "–");
    L.push(row([`${line.label} ${line.metric.higherIsBetter ? "↑" : "↓"}`, best, ...ratios]));
  }
  L.push("", "↑ higher is better; ↓ lower is better (there a ratio below 1 means mqttx wins).", "");

  for (const s of file.scenarios) {
    L.push(`## ${s.id}: ${s.title}`, "", "`" + `${lgName(file)} ${s.args.join(" ")}` + "`", "");
    if (s.warm) {
      L.push(
        `run first on the same broker, not measured: \`${lgName(file)} ${s.warm.join(" ")}\``,
        "",
      );
    }
    const c = (recs: RunRecord[], get: Get, fmt = int) => cell(recs, get, fmt);
    if (s.metric === "kbPerConn") {
      L.push(...header([
        "broker",
        "conn ok / fail",
        "connect p50 / p99 ms",
        "RSS before KB",
        "RSS holding KB",
        "RSS after KB",
        "KB/connection",
        "notes",
      ]));
    } else {
      L.push(...header([
        "broker",
        ...(["pub", "delivered", "p50", "p99"] as const).map((id) => METRICS[id].label),
        "broker cpu%",
        "LG cpu%",
        "other on CPU 1 %",
        "notes",
      ]));
    }
    for (const b of file.brokers) {
      const rs = records(file, b, s.id);
      if (!rs.length) continue;
      const x = (r: RunRecord) => r.result;
      L.push(row(
        s.metric === "kbPerConn"
          ? [
            b,
            `${c(rs, (r) => x(r)?.conn_ok)} / ${c(rs, (r) => x(r)?.conn_fail)}`,
            `${c(rs, (r) => x(r)?.conn_ms.p50, ms)} / ${c(rs, (r) => x(r)?.conn_ms.p99, ms)}`,
            c(rs, (r) => x(r)?.broker_rss_kb_before),
            c(rs, (r) => x(r)?.broker_rss_kb_hold),
            c(rs, (r) => x(r)?.broker_rss_kb_after),
            c(rs, METRICS.kbPerConn.get, METRICS.kbPerConn.fmt),
            notes(rs),
          ]
          : [
            b,
            ...(["pub", "delivered", "p50", "p99"] as const)
              .map((id) => c(rs, METRICS[id].get, METRICS[id].fmt)),
            c(rs, (r) => x(r)?.broker_cpu_pct, pct),
            c(rs, (r) => x(r)?.lg_cpu_pct, pct),
            c(rs, (r) => r.cpu1OtherPct, pct),
            notes(rs),
          ],
      ));
    }
    L.push("");
    if (s.id.startsWith("S2")) L.push(...deliveredAndDropped(file, s.id));
  }

  L.push("## Start-up and idle memory (every fresh broker of this report)", "");
  L.push(...header(["broker", "start-up to first CONNACK ms", "idle VmRSS KB", "starts"]));
  for (const b of file.brokers) {
    const rs = records(file, b);
    const started = rs.filter((r) => r.startupMs !== null);
    if (!rs.length) continue;
    const [startup, rss] = [METRICS.startup, METRICS.idleRss];
    L.push(row([
      b,
      cell(started, startup.get, startup.fmt),
      cell(started, rss.get, rss.fmt),
      `${started.length}/${rs.length}`,
    ]));
  }
  L.push("");
  return L.join("\n");
}

/** Horizontal bars on a log scale around 1: the score of each mqttx runtime against the best baseline. */
export function renderSvg(file: BenchFile): string {
  const lines = ratioLines(file);
  const colors: Record<string, string> = {
    "mqttx-deno": "#2a9d8f",
    "mqttx-bun": "#e9a23b",
    "mqttx-bin": "#8a5a9e",
  };
  const mq = mqttxIn(file);
  const [barH, left, width, top] = [12, 250, 800, 64];
  const rowH = 8 + mq.length * (barH + 2);
  const plotW = width - left - 60, height = top + lines.length * rowH + 40;
  // score > 1 always means "mqttx is better", whatever the metric's direction
  const score = (l: RatioLine, m: string) => {
    const r = l.ratios[m];
    return r === null || r <= 0 ? null : l.metric.higherIsBetter ? r : 1 / r;
  };
  const all = lines.flatMap((l) => mq.map((m) => score(l, m) ?? 1));
  // log scale from at least 0.1× to 2×, at most 0.01× to 100×; longer bars are cut at the edge
  const lo = Math.max(0.01, Math.min(0.1, ...all)), hi = Math.min(100, Math.max(2, ...all));
  const x = (v: number) =>
    Math.round(left + Math.log10(Math.min(hi, Math.max(lo, v)) / lo) / Math.log10(hi / lo) * plotW);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const text = (px: number, py: number, s: string, attrs = "") =>
    `<text x="${px}" y="${py}"${attrs}>${esc(s)}</text>`;
  const num = (v: number) => v >= 0.1 ? v.toFixed(2) : v.toPrecision(1);

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(10, 20, `mqttx vs the best of Mosquitto and Aedes, ${file.date}`, ` font-size="15"`),
    text(
      10,
      38,
      "> 1: mqttx better. Throughput: mqttx/best; latency, memory, start-up: best/mqttx.",
      ` fill="#555"`,
    ),
  ];
  mq.forEach((m, j) => {
    out.push(
      `<rect x="${width - 130}" y="${8 + j * 16}" width="10" height="10" fill="${colors[m]}"/>`,
    );
    out.push(text(width - 116, 17 + j * 16, m));
  });
  for (const t of [0.01, 0.1, 0.5, 1, 2, 10, 100]) {
    if (t < lo || t > hi) continue;
    const color = t === 1 ? "#000" : "#ddd";
    out.push(
      `<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${height - 30}" stroke="${color}"/>`,
    );
    out.push(text(x(t), height - 16, `${t}×`, ` text-anchor="middle" fill="#555"`));
  }
  lines.forEach((l, i) => {
    const y = top + i * rowH;
    out.push(text(left - 50, y + rowH / 2, l.label, ` text-anchor="end"`));
    mq.forEach((m, j) => {
      const s = score(l, m), by = y + 4 + j * (barH + 2);
      if (s === null) return out.push(text(x(1) + 4, by + barH - 2, `${m}: n/a`, ` fill="#999"`));
      const x0 = Math.min(x(1), x(s)), w = Math.max(1, Math.abs(x(s) - x(1)));
      out.push(`<rect x="${x0}" y="${by}" width="${w}" height="${barH}" fill="${colors[m]}"/>`);
      const [tx, anchor] = s >= 1 ? [x0 + w + 4, ""] : [x0 - 4, ` text-anchor="end"`];
      out.push(text(tx, by + barH - 2, num(s), anchor));
    });
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Writes `<base>.md` and `<base>.svg`, then `deno fmt`s them with `<base>.json` (for `make check`). */
export async function writeReports(base: string, file: BenchFile): Promise<void> {
  await Deno.writeTextFile(`${base}.md`, renderMarkdown(file));
  await Deno.writeTextFile(`${base}.svg`, renderSvg(file));
  const paths = ["json", "md", "svg"].map((ext) => `${base}.${ext}`);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", ...paths] }).output();
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (!path) {
    console.error("usage: deno run -A bench/report.ts bench/results/<date>.json");
    Deno.exit(2);
  }
  const base = path.replace(/\.json$/, "");
  await writeReports(base, JSON.parse(await Deno.readTextFile(path)));
  console.log(`wrote ${base}.md and ${base}.svg`);
}
