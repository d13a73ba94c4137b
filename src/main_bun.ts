/** Bun entry (`bun src/main_bun.ts`, `bun build --compile src/main_bun.ts`). */
import { cliMain } from "./cli_main.ts";
import { bunRuntime } from "./runtime/bun.ts";

await cliMain(bunRuntime);
