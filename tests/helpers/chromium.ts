/** Headless Chromium for browser tests: which binary, and the flags every run needs. */
import { spawnSync } from "node:child_process";

export const CHROMIUM: string | undefined = ["chromium", "chromium-browser", "google-chrome"]
  .find((c) => spawnSync(c, ["--version"], { stdio: "ignore" }).error === undefined);

/** Headless, no sandbox (CI runs as root), no background traffic, its own profile directory. */
export function chromiumFlags(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    `--user-data-dir=${profile}`,
  ];
}
