/**
 * What `/health` reports: every source registered here (the listeners, and
 * any backend such as the Redis store or the Kafka bridge) says whether it is
 * up. Sources answer synchronously from state they already keep (last known
 * connection state), so a health probe never waits on a backend.
 */
export interface HealthStatus {
  ok: boolean;
  /** Why not, or what is up (shown in the JSON body). */
  detail?: string;
}

export interface HealthSource {
  /** Unique and stable, e.g. "listeners", "redis", "kafka-bridge". */
  readonly name: string;
  status(): HealthStatus;
}

export interface HealthReport {
  ok: boolean;
  /** Names of the sources that are not ok. */
  failing: string[];
  checks: Record<string, HealthStatus>;
}

export class HealthRegistry {
  private readonly sources = new Map<string, HealthSource>();

  /** Add a source (replacing one of the same name); returns its removal. */
  register(source: HealthSource): () => void {
    this.sources.set(source.name, source);
    return () => {
      if (this.sources.get(source.name) === source) this.sources.delete(source.name);
    };
  }

  report(): HealthReport {
    const checks: Record<string, HealthStatus> = {};
    const failing: string[] = [];
    for (const [name, source] of this.sources) {
      let s: HealthStatus;
      try {
        s = source.status();
      } catch (e) {
        s = { ok: false, detail: `status check failed: ${e instanceof Error ? e.message : e}` };
      }
      checks[name] = s;
      if (!s.ok) failing.push(name);
    }
    return { ok: failing.length === 0, failing, checks };
  }
}
