/** Deno entry (`deno run -A src/main.ts`, `deno compile src/main.ts`). */
import { cliMain } from "./cli_main.ts";
import { denoRuntime } from "./runtime/deno.ts";

await cliMain(denoRuntime);
