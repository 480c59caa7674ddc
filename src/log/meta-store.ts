import { CorruptLogError, fromNative, InvalidLogOperationError } from './errors.js';
import { native } from './native.js';
import path from 'node:path';

/** JSON-compatible values for the small state kept beside term and vote. */
export type MetaValue = null | boolean | number | string | MetaValue[] | { [key: string]: MetaValue };

/** Raft's hard state plus any small application state. */
export interface MetaState {
  term: number;
  /** The candidate voted for in `term`, or null. */
  vote: string | null;
  [key: string]: MetaValue;
}

const DEFAULT_NAME = 'meta';

/**
 * Small durable state (Raft's term and vote), checksummed; a crash leaves
 * either the old or the new state. A state of up to 496 bytes of JSON is one
 * 512-byte block rewritten in place with one fdatasync, which relies on the
 * disk writing a sector whole or not at all (where one tears, opening reports
 * the file corrupt); a bigger one, the first save, and the save after a
 * failed one write a temporary file, fsync it, rename it over the old one and
 * fsync the directory. Opening syncs what it loads, so nothing a killed
 * process left unsynced is trusted.
 *
 * ```ts
 * const meta = await MetaStore.open('./data/n1');
 * await meta.save({ term: meta.state.term + 1, vote: 'n1' });
 * ```
 */
export class MetaStore {
  readonly dir: string;
  readonly file: string;
  private current: MetaState;
  private chain: Promise<void> = Promise.resolve();
  /**
   * False after a failed save: whatever it left (a renamed file whose
   * directory was not synced, a block the disk may not hold) is not known to
   * be durable, so the next save replaces the file and syncs the directory.
   */
  private inPlace = true;

  private constructor(dir: string, name: string, state: MetaState) {
    this.dir = dir;
    this.file = path.join(dir, name);
    this.current = state;
  }

  /** Loads the state in `dir` (creating the directory), or starts at term 0 with no vote. */
  static async open(dir: string, options: { name?: string } = {}): Promise<MetaStore> {
    const name = options.name ?? DEFAULT_NAME;
    let payload: Buffer | null;
    try {
      payload = await native.metaLoad(dir, name);
    } catch (err) {
      throw fromNative(err);
    }
    if (payload === null) return new MetaStore(dir, name, { term: 0, vote: null });
    const file = path.join(dir, name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      throw new CorruptLogError(`${file}: state is not valid JSON (${(err as Error).message})`, file, 16);
    }
    const state = parsed as MetaState;
    if (typeof state !== 'object' || state === null || !Number.isSafeInteger(state.term) ||
        !(state.vote === null || typeof state.vote === 'string')) {
      throw new CorruptLogError(`${file}: state lacks a valid term and vote`, file, 16);
    }
    return new MetaStore(dir, name, state);
  }

  get state(): Readonly<MetaState> {
    return this.current;
  }

  get term(): number {
    return this.current.term;
  }

  get vote(): string | null {
    return this.current.vote;
  }

  /**
   * Merges `update` into the state and makes it durable. Saves run one at a
   * time in call order; `state` shows the update only once it is on disk.
   */
  save(update: Partial<MetaState>): Promise<void> {
    const run = async (): Promise<void> => {
      const next = { ...this.current, ...update } as MetaState;
      if (!Number.isSafeInteger(next.term) || next.term < 0) {
        throw new InvalidLogOperationError(`term must be a non-negative safe integer, got ${next.term}`);
      }
      if (!(next.vote === null || typeof next.vote === 'string')) {
        throw new InvalidLogOperationError('vote must be a string or null');
      }
      try {
        await native.metaSave(this.dir, path.basename(this.file), Buffer.from(JSON.stringify(next), 'utf8'), this.inPlace);
      } catch (err) {
        this.inPlace = false;
        throw fromNative(err);
      }
      this.inPlace = true;
      this.current = next;
    };
    const result = this.chain.then(run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  /**
   * Resolves once every save begun so far has finished, failed ones
   * included: a save still running after its owner let go of the directory
   * could land after the next owner's, and put back a vote it replaced.
   */
  idle(): Promise<void> {
    return this.chain;
  }
}
