/**
 * glibc through Deno's FFI, for the few calls Node's API lacks (malloc_trim, a thread's
 * scheduling policy): the symbols asked for, or undefined where they cannot be had (not Linux,
 * no FFI permission, no libc.so.6 as on musl). Callers then do without.
 */
export function denoLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] | undefined {
  try {
    if (Deno.build.os !== "linux") return undefined;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    return Deno.dlopen("libc.so.6", symbols).symbols;
  } catch {
    return undefined;
  }
}
