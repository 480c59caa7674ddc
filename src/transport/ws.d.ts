// The few parts of the `ws` 8 client that the peer transport and raftline/client
// use (@types/ws is not a dependency). Kept to what they call.
declare module 'ws' {
  import type { EventEmitter } from 'node:events';
  import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

  interface ClientOptions {
    /** Largest message accepted from the server, in bytes. */
    maxPayload?: number;
    perMessageDeflate?: boolean;
    /** Milliseconds allowed for the HTTP upgrade. */
    handshakeTimeout?: number;
    followRedirects?: boolean;
    /** Extra headers of the HTTP upgrade request. */
    headers?: OutgoingHttpHeaders;
    /** Fills the 4-byte masking key of each frame; an all-zero key makes `ws` skip masking the payload. */
    generateMask?: (mask: Buffer) => void;
  }

  class WebSocket extends EventEmitter {
    static readonly CONNECTING: 0;
    static readonly OPEN: 1;
    static readonly CLOSING: 2;
    static readonly CLOSED: 3;
    constructor(address: string, options?: ClientOptions);
    readonly readyState: 0 | 1 | 2 | 3;
    /** Bytes handed to `send` that the socket has not yet written to the kernel. */
    readonly bufferedAmount: number;
    /** `cb` runs once the frame has been written to the socket (or with an error if it never will be). */
    send(data: Uint8Array | string, options?: { binary: boolean }, cb?: (err?: Error) => void): void;
    close(code?: number, reason?: string): void;
    terminate(): void;
    /** Sends a ping frame; the peer's answer arrives as a 'pong' event. */
    ping(data?: Uint8Array): void;
    on(event: 'open', listener: () => void): this;
    on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): this;
    on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'ping', listener: (data: Buffer) => void): this;
    on(event: 'pong', listener: (data: Buffer) => void): this;
    /** The server answered the upgrade with something other than 101; without a listener, an 'error' instead. */
    on(event: 'unexpected-response', listener: (req: ClientRequest, res: IncomingMessage) => void): this;
  }

  export default WebSocket;
}
