/**
 * Recycles large framing buffers. A fresh multi-megabyte buffer costs a page
 * fault per 4 KiB on first touch, which for 1 MiB appends was as much time as
 * copying the data; reusing buffers the writer has finished with avoids it.
 * Small buffers come from Node's own pool instead.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  constructor(
    private readonly minBytes: number,
    private readonly maxPooledBytes: number,
  ) {}

  /** A buffer of exactly `bytes` bytes (contents undefined). */
  acquire(bytes: number): Buffer {
    if (bytes < this.minBytes) return Buffer.allocUnsafe(bytes);
    const capacity = 2 ** Math.ceil(Math.log2(bytes));
    const recycled = this.free.get(capacity)?.pop();
    if (recycled) {
      this.pooledBytes -= capacity;
      return recycled.subarray(0, bytes);
    }
    return Buffer.allocUnsafeSlow(capacity).subarray(0, bytes);
  }

  /** Returns a buffer from `acquire` once nothing reads it any more. */
  release(buf: Uint8Array): void {
    const capacity = buf.buffer.byteLength;
    if (buf.byteLength < this.minBytes || buf.byteOffset !== 0 || this.pooledBytes + capacity > this.maxPooledBytes) {
      return;
    }
    const list = this.free.get(capacity) ?? [];
    list.push(Buffer.from(buf.buffer, 0, capacity));
    this.free.set(capacity, list);
    this.pooledBytes += capacity;
  }
}
