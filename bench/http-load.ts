// The load generator's HTTP client: keep-alive HTTP/1.1 over node:net, one
// request at a time per connection, reading only the status line and as much
// of the answer as its length says. Node's http client spends about 40 µs of
// CPU per request, more than raftline's servers together spend on a put at
// high concurrency, so the JSON points measured the generator as much as the
// servers; this spends a fraction of that, on both systems alike.
import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/**
 * Where the first response in `buf` ends and its status, or null while it
 * is incomplete. Throws on anything but an HTTP/1.x response whose length is
 * known (Content-Length, chunked, or a status that has no body).
 */
export function parseResponse(buf: Buffer): { status: number; end: number } | null {
  const headEnd = buf.indexOf(HEADER_END);
  if (headEnd < 0) return null;
  const head = buf.toString('latin1', 0, headEnd);
  const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!statusLine) throw new Error(`not an HTTP/1.x response: ${JSON.stringify(head.slice(0, 60))}`);
  const status = Number(statusLine[1]);
  const bodyStart = headEnd + HEADER_END.length;
  const contentLength = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (contentLength) {
    const end = bodyStart + Number(contentLength[1]);
    return end <= buf.length ? { status, end } : null;
  }
  if (/\r\ntransfer-encoding:[ \t]*chunked/i.test(head)) {
    for (let at = bodyStart; ; ) {
      const sizeEnd = buf.indexOf(CRLF, at);
      if (sizeEnd < 0) return null;
      const size = Number.parseInt(buf.toString('latin1', at, sizeEnd), 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad chunk size ${JSON.stringify(buf.toString('latin1', at, sizeEnd))}`);
      at = sizeEnd + CRLF.length + size + CRLF.length;
      if (at > buf.length) return null;
      if (size === 0) return { status, end: at };
    }
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, end: bodyStart };
  throw new Error(`a ${status} response with neither Content-Length nor chunked encoding`);
}

class Connection {
  private received: Buffer | null = null;
  private waiter: { resolve: (status: number) => void; reject: (err: Error) => void } | null = null;
  private broken: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the server closed the connection')));
  }

  static open(host: string, port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Connection(socket));
      });
    });
  }

  get usable(): boolean {
    return this.broken === null;
  }

  /** Sends one whole request and resolves with the status of its answer. */
  exchange(request: string): Promise<number> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.write(request);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.received = this.received ? Buffer.concat([this.received, chunk]) : chunk;
    let parsed: { status: number; end: number } | null;
    try {
      parsed = parseResponse(this.received);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    if (!parsed) return;
    if (parsed.end !== this.received.length || !this.waiter) {
      this.fail(new Error('the server sent more than the answer to the one request in flight'));
      this.socket.destroy();
      return;
    }
    this.received = null;
    const waiter = this.waiter;
    this.waiter = null;
    waiter.resolve(parsed.status);
  }

  private fail(err: Error): void {
    this.broken ??= err;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
  }
}

/** POSTs JSON bodies to one server over a pool of keep-alive connections, opened as concurrency needs them. */
export class HttpLoadClient {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly host: string;
  private readonly port: number;

  constructor(baseUrl: string) {
    const u = new URL(baseUrl);
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  /** Resolves with the answer's status; rejects if the connection failed (it is then dropped). */
  async post(path: string, body: string): Promise<number> {
    const connection = this.idle.pop() ?? (await this.open());
    const request = `POST ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    try {
      return await connection.exchange(request);
    } finally {
      if (connection.usable) this.idle.push(connection);
      else {
        this.all.delete(connection);
        connection.destroy();
      }
    }
  }

  close(): void {
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle.length = 0;
  }

  private async open(): Promise<Connection> {
    const c = await Connection.open(this.host, this.port);
    this.all.add(c);
    return c;
  }
}
