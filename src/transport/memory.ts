// An in-process network for tests: every message is encoded to its wire
// frame and decoded on arrival (so nothing is shared between nodes), delivered
// asynchronously, and may be dropped or cut off by a partition.
import type { NodeId } from '../core/index.js';
import { decodeEnvelope, encodeEnvelope } from './codec.js';
import type { PeerMessage, Transport } from './transport.js';

export class MemoryNetwork {
  private readonly receivers = new Map<string, (message: PeerMessage) => void>();
  private readonly cut = new Set<string>();
  /** Probability of dropping any one message. */
  dropRate = 0;
  /** Drops the messages it returns true for (to starve one kind of traffic). */
  drop: (message: PeerMessage) => boolean = () => false;

  constructor(private readonly random: () => number = Math.random) {}

  /** The transport of one process. */
  transport(): Transport {
    return {
      send: (group, message) => this.deliver(group, message),
      register: (group, id, receive) => {
        const key = `${group}/${id}`;
        this.receivers.set(key, receive);
        return () => {
          if (this.receivers.get(key) === receive) this.receivers.delete(key);
        };
      },
    };
  }

  /** Drops every message between `a` and `b`, both ways. */
  partition(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  /** Cuts `id` off from every node in `others`. */
  isolate(id: NodeId, others: readonly NodeId[]): void {
    for (const o of others) if (o !== id) this.partition(id, o);
  }

  heal(): void {
    this.cut.clear();
  }

  private deliver(group: string, message: PeerMessage): void {
    if (this.cut.has(`${message.from}>${message.to}`) || this.drop(message) || this.random() < this.dropRate) return;
    const frame = encodeEnvelope(group, message);
    setImmediate(() => {
      const decoded = decodeEnvelope(frame);
      this.receivers.get(`${decoded.group}/${decoded.message.to}`)?.(decoded.message);
    });
  }
}
