// Every public object that owns something in the kernel derives from
// Resource: close() is idempotent, use after close throws ERR_VFIO_CLOSED,
// `using` works, and a FinalizationRegistry catches what was never closed.

import { RuleCode, VfioError } from './errors';

// The safety net: it only ever holds a closer that captures native handles,
// never the wrapper itself, so the wrapper can be collected.
const leaked = new FinalizationRegistry<{ what: string; close: () => void }>((held) => {
  try {
    held.close();
  } finally {
    process.emitWarning(`${held.what} was garbage-collected without close(); it has been closed now`, {
      code: 'VFIO_LEAKED_RESOURCE',
    });
  }
});

export abstract class Resource implements Disposable {
  #closed = false;
  #closing = false;
  #tracked = false;

  /** What the object is, for messages: 'group 12', 'device 0000:00:03.0'. */
  abstract readonly description: string;

  get closed(): boolean {
    return this.#closed;
  }

  /** Arms the safety net with a closer over native handles only. */
  protected track(closeNative: () => void): void {
    leaked.register(this, { what: this.description, close: closeNative }, this);
    this.#tracked = true;
  }

  /** Throws ERR_VFIO_CLOSED if this object (or a parent) is closed. */
  protected assertOpen(): void {
    if (this.#closed || this.#closing) {
      throw new VfioError(RuleCode.CLOSED, `${this.description} is closed`);
    }
  }

  /** Release what this object owns, children first. Runs once. */
  protected abstract release(): void;

  /** Throw here to refuse a close() and leave the object open and usable. */
  protected assertClosable(): void {}

  close(): void {
    if (this.#closed || this.#closing) return;
    this.assertClosable();
    this.#closing = true;
    try {
      this.release();
    } finally {
      this.#closed = true;
      this.#closing = false;
      if (this.#tracked) leaked.unregister(this);
    }
  }

  /** Record that the kernel object is already gone (a parent released it). */
  protected markClosed(): void {
    this.#closed = true;
    if (this.#tracked) leaked.unregister(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Closes every resource, even if some throw; re-throws the first error
 * afterwards so one bad child does not leave its siblings open.
 */
export function closeAll(resources: Iterable<{ close(): void }>): void {
  let first: unknown;
  let failed = false;
  for (const r of [...resources]) {
    try {
      r.close();
    } catch (e) {
      if (!failed) first = e;
      failed = true;
    }
  }
  if (failed) throw first;
}
