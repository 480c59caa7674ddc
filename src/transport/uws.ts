// Loads uWebSockets.js from the npm mirror and insists on its native build.
// The package silently swaps in a pure-JS implementation when its binary does
// not match the running Node; that would quietly cost most of the transport's
// speed, so here it is an error instead.
import { createRequire } from 'node:module';

const PACKAGE = '@trufflesuite/uws-js-unofficial';

export type UwsModule = typeof import('@trufflesuite/uws-js-unofficial');

export class UwsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UwsUnavailableError';
  }
}

/** The binary name the package would load for this platform and Node ABI. */
export function uwsBinaryName(): string {
  return `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
}

let loaded: UwsModule | undefined;

/** Returns the native uWebSockets.js module, or throws `UwsUnavailableError` saying why it cannot be used. */
export function loadUws(): UwsModule {
  if (loaded) return loaded;
  const flag = process.env.UWS_USE_FALLBACK;
  if (flag !== undefined && /^(1|true)$/i.test(flag)) {
    throw new UwsUnavailableError(
      `UWS_USE_FALLBACK=${flag} asks ${PACKAGE} for its pure-JS fallback; raftline requires the native ` +
        'uWebSockets.js build. Unset UWS_USE_FALLBACK.',
    );
  }
  const require = createRequire(import.meta.url);
  const binary = `${PACKAGE}/binaries/${uwsBinaryName()}`;
  try {
    loaded = require(binary) as UwsModule;
  } catch (err) {
    throw new UwsUnavailableError(
      `${PACKAGE} has no native build for ${process.platform}-${process.arch} with Node ABI ` +
        `${process.versions.modules} (Node ${process.version}); raftline will not run on its pure-JS fallback. ` +
        `Use a Node version the package ships binaries for. Cause: ${(err as Error).message}`,
    );
  }
  if (typeof loaded.App !== 'function') {
    loaded = undefined;
    throw new UwsUnavailableError(`${binary} loaded but does not export App; the install is damaged`);
  }
  return loaded;
}

export type UwsApp = import('@trufflesuite/uws-js-unofficial').TemplatedApp;
export type UwsListenSocket = import('@trufflesuite/uws-js-unofficial').us_listen_socket;
/** The package's typings lack this overload, though its binary takes it. */
type ListenWithOptions = (this: UwsApp, host: string, port: number, options: number, cb: (socket: UwsListenSocket | false) => void) => UwsApp;
/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT. */
const LISTEN_EXCLUSIVE_PORT = 1;

/**
 * Listens on host:port or settles with false. uSockets binds with SO_REUSEPORT
 * unless told otherwise, and then a second server on a port already taken
 * binds too and the kernel splits the connections between the two: a member
 * started twice would answer half its clients from each process.
 */
export function listenExclusive(app: UwsApp, host: string, port: number): Promise<UwsListenSocket | false> {
  return new Promise((resolve) => (app.listen as unknown as ListenWithOptions).call(app, host, port, LISTEN_EXCLUSIVE_PORT, resolve));
}
