/**
 * "ip:port", with IPv6 in brackets: "[::1]:1883". join() makes one flat string
 * (a template literal keeps a rope of pieces alive per connection).
 */
export function hostPort(host: string, port: number | string): string {
  return [host.includes(":") ? `[${host}]` : host, port].join(":");
}
