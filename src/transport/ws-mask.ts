/**
 * The masking key for `ws` clients: all zeros, which makes `ws` skip masking.
 * RFC 6455 has clients mask their frames so that a script in a browser cannot
 * choose the bytes a proxy sees; these clients are Node processes, not
 * pages, and masking costs a random fill and a pass over every frame. The
 * frames stay valid (mask bit set, key zero), so any server accepts them.
 */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
