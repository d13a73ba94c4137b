/**
 * Prometheus text exposition format 0.0.4, written only when scraped:
 * `# HELP`, `# TYPE`, then one line per sample. Label values are escaped as
 * the format requires (backslash, double quote, newline).
 */
export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge";

export class PromText {
  private readonly lines: string[] = [];

  /** One metric family: a single value, or one value per label set. */
  family(
    name: string,
    type: MetricType,
    help: string,
    samples: number | [Labels, number][],
  ): void {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.lines.push(`# TYPE ${name} ${type}`);
    if (typeof samples === "number") {
      this.lines.push(`${name} ${num(samples)}`);
      return;
    }
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
      this.lines.push(`${name}{${l}} ${num(value)}`);
    }
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** The content type Prometheus expects for this format. */
export const PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
