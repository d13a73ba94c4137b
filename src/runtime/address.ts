/**
 * "ip:port", with IPv6 in brackets: "[::1]:1883". join() makes one flat string
 * (a template literal keeps a rope of pieces alive per connection).
 */
export function hostPort(host: string, port: number | string): string {
  return [host.includes(":") && !host.startsWith("[") ? `[${host}]` : host, port].join(":");
}

/**
 * One string per distinct peer IP: many connections from one gateway (or a
 * load test) then share it instead of holding an "ip:port" each.
 */
const ips = new Map<string, string>();
export function sharedIp(ip: string): string {
  const known = ips.get(ip);
  if (known !== undefined) return known;
  if (ips.size >= 4096) ips.clear(); // bounded: an IP past this is merely not shared
  ips.set(ip, ip);
  return ip;
}
