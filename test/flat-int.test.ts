import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as flatbuffers from 'flatbuffers';
import { addSafeInteger, INT64_SLOTS, readSafeInteger, type FlatTable } from '../src/transport/flat-int.js';
import { ClientFrameError, decodeResponse, encodeResponse } from '../src/transport/client-codec.js';
import { decodeEnvelope, encodeEnvelope, FrameError } from '../src/transport/codec.js';
import { Response } from '../src/transport/generated/raftline/client/response.js';
import { Envelope } from '../src/transport/generated/raftline/wire/envelope.js';

type Generated = Record<string, (...args: unknown[]) => unknown> & { name: string };

const GENERATED_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'transport', 'generated', 'raftline');

/** Every generated table class, by name. */
async function generatedTables(): Promise<Map<string, Generated>> {
  const tables = new Map<string, Generated>();
  for (const dir of readdirSync(GENERATED_DIR)) {
    for (const file of readdirSync(path.join(GENERATED_DIR, dir)).filter((f) => f.endsWith('.js'))) {
      const module = (await import(pathToFileURL(path.join(GENERATED_DIR, dir, file)).href)) as Record<string, unknown>;
      for (const value of Object.values(module)) {
        if (typeof value === 'function' && Object.getOwnPropertyNames(value).some((p) => p.startsWith('start'))) tables.set(value.name, value as unknown as Generated);
      }
    }
  }
  return tables;
}

/** A table holding only `field`, written by `add`, and its root. */
function table(cls: Generated, add: (b: flatbuffers.Builder) => void): { bytes: Uint8Array; root: FlatTable & Record<string, () => unknown> } {
  const b = new flatbuffers.Builder(64);
  cls[`start${cls.name}`](b);
  add(b);
  b.finish(cls[`end${cls.name}`](b) as number);
  const bytes = b.asUint8Array().slice();
  const root = cls[`getRootAs${cls.name}`](new flatbuffers.ByteBuffer(bytes)) as FlatTable & Record<string, () => unknown>;
  return { bytes, root };
}

const upper = (field: string) => field[0].toUpperCase() + field.slice(1);
const SAFE_VALUES = [0, 1, 255, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER];

test('every 64-bit field of the generated code is listed in INT64_SLOTS, at the slot its adder uses', async () => {
  const found: Record<string, Record<string, number>> = {};
  for (const [name, cls] of await generatedTables()) {
    for (const method of Object.getOwnPropertyNames(cls).filter((p) => p.startsWith('add'))) {
      const slot = /addFieldInt64\((\d+),/.exec(String(cls[method]))?.[1];
      if (slot !== undefined) (found[name] ??= {})[method[3].toLowerCase() + method.slice(4)] = Number(slot);
    }
  }
  assert.deepEqual(found, INT64_SLOTS);
});

test('64-bit fields written and read without BigInt match the generated adders and accessors, byte for byte', async () => {
  const tables = await generatedTables();
  for (const [name, fields] of Object.entries(INT64_SLOTS)) {
    const cls = tables.get(name)!;
    for (const [field, slot] of Object.entries(fields)) {
      for (const value of SAFE_VALUES) {
        const generated = table(cls, (b) => cls[`add${upper(field)}`](b, BigInt(value)));
        const ours = table(cls, (b) => addSafeInteger(b, slot, value));
        assert.deepEqual(ours.bytes, generated.bytes, `${name}.${field} = ${value}`);
        assert.equal(readSafeInteger(generated.root, slot), value, `${name}.${field} = ${value}`);
        assert.equal(ours.root[field](), BigInt(value), `${name}.${field} = ${value}`);
      }
    }
  }
});

test('a 64-bit field that is negative or above MAX_SAFE_INTEGER reads as -1, and the decoders refuse it', async () => {
  const tables = await generatedTables();
  const cls = tables.get('Response')!;
  for (const value of [2n ** 53n, 2n ** 63n - 1n, -1n, -(2n ** 40n)]) {
    assert.equal(readSafeInteger(table(cls, (b) => Response.addRevision(b, value)).root, INT64_SLOTS.Response.revision), -1, String(value));
  }
  const response = encodeResponse({ id: 1, errorCode: '', error: '', leader: null, revision: 7, succeeded: true, duplicate: false, results: [], session: '' });
  const revisionAt = Buffer.from(response).indexOf(Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]));
  assert.ok(revisionAt > 0);
  const tooLarge = Buffer.from(response);
  tooLarge.writeBigUInt64LE(2n ** 53n, revisionAt);
  assert.throws(() => decodeResponse(tooLarge), (err: Error) => err instanceof ClientFrameError && /revision out of range/.test(err.message));

  const envelope = Buffer.from(encodeEnvelope('g', { from: 'n1', to: 'n2', term: 0x0102030405, type: 'commit', commit: 3 }));
  const termAt = envelope.indexOf(Buffer.from([5, 4, 3, 2, 1, 0, 0, 0]));
  assert.ok(termAt > 0);
  envelope.writeBigInt64LE(-2n, termAt);
  assert.throws(() => decodeEnvelope(envelope), (err: Error) => err instanceof FrameError && /term is out of range/.test(err.message));
  assert.equal(Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(envelope)).term(), 2n ** 64n - 2n);
});

test('only non-negative safe integers can be written', () => {
  const b = new flatbuffers.Builder(64);
  Response.startResponse(b);
  for (const value of [-1, 1.5, 2 ** 53, Number.NaN, Infinity]) assert.throws(() => addSafeInteger(b, INT64_SLOTS.Response.revision, value), RangeError, String(value));
});
