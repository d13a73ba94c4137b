/**
 * JavaScriptCore's JIT dumps (Bun with `BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=<folder>`)
 * as `/tmp/perf-<pid>.map`, which `perf report` reads to name the JIT code of a `perf record`
 * (`bench/cluster_ab.ts` PERF=<folder>). JSC names its dump files so that `perf inject --jit`
 * does not find them. Code addresses are reused after a function is recompiled: a share per
 * JIT function is approximate.
 *
 *   deno run -A bench/jit_map.ts <folder>/jit-*.dump
 */
for (const path of Deno.args) {
  const d = await Deno.readFile(path);
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const lines = new Map<number, string[]>();
  let n = 0;
  // header: magic, version, header size (u32 each), ...; records: id u32, size u32, time u64
  for (let off = v.getUint32(8, true); off + 16 <= d.length;) {
    const id = v.getUint32(off, true), size = v.getUint32(off + 4, true);
    if (size === 0) break;
    if (id === 0) { // JIT_CODE_LOAD: pid, tid u32; vma, code address, code size, index u64; name
      const pid = v.getUint32(off + 16, true);
      const addr = v.getBigUint64(off + 32, true), len = v.getBigUint64(off + 40, true);
      const start = off + 56, end = d.indexOf(0, start);
      const name = new TextDecoder().decode(d.subarray(start, end)).replaceAll("\n", " ");
      let l = lines.get(pid);
      if (!l) lines.set(pid, l = []);
      l.push(`${addr.toString(16)} ${len.toString(16)} ${name}`);
      n++;
    }
    off += size;
  }
  for (const [pid, l] of lines) {
    await Deno.writeTextFile(`/tmp/perf-${pid}.map`, l.join("\n") + "\n", { append: true });
  }
  console.log(`${path}: ${n} functions, pids ${[...lines.keys()].join(" ")}`);
}
