// Every public object that owns something in the kernel derives from
// Resource: close() is idempotent, use after close throws ERR_VFIO_CLOSED,
// `using` works, and a FinalizationRegistry catches what was never closed.
//
// close() marks the object closed only once release() has returned: a close
// that throws (refused, or stopped by the kernel) has not closed the object.
// The VFIO objects' release() is teardown() (lib/teardown.ts), which marks
// each object closed at the step that really closed it.

import { RuleCode, VfioError } from './errors';

// The safety net: it only ever holds a closer over native handles, never the
// wrapper itself (nor anything that reaches it), so the wrapper can be
// collected. The closer says whether it found anything still open.
const leaked = new FinalizationRegistry<{ what: string; close: () => boolean }>((held) => {
  let closed = false;
  try {
    closed = held.close();
  } catch {
    closed = true;
  }
  if (closed) {
    process.emitWarning(`${held.what} was garbage-collected without close(); it has been closed now`, { code: 'VFIO_LEAKED_RESOURCE' });
  }
});

export abstract class Resource implements Disposable {
  #closed = false;
  #tracked = false;

  /** What the object is, for messages: 'group 12', 'device 0000:00:03.0'. */
  abstract readonly description: string;

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Arms the safety net with a closer over native handles only; call it last
   * in a constructor, once nothing can fail. The closer returns whether it
   * closed anything (false when the handles were closed already).
   */
  protected track(closeNative: () => boolean): void {
    leaked.register(this, { what: this.description, close: closeNative }, this);
    this.#tracked = true;
  }

  /** Throws ERR_VFIO_CLOSED if this object is closed. */
  protected assertOpen(): void {
    if (this.#closed) throw new VfioError(RuleCode.CLOSED, `${this.description} is closed`);
  }

  /**
   * Release what this object owns. Throw to refuse (nothing changed), or
   * when the kernel stops it halfway (the books equal to the kernel's): the
   * object then stays open for a retry.
   */
  protected abstract release(): void;

  /** Closes the kernel object, and first everything opened through it. Idempotent; a close the kernel refuses throws and closes nothing. */
  close(): void {
    if (this.#closed) return;
    this.release();
    this.markClosed();
  }

  /** @internal The kernel object is gone (closed here, or by teardown()). */
  markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#tracked) leaked.unregister(this);
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A native handle's closer for track(): true when it was still open. */
export function closerOf(handle: { readonly fd: number; close(): void }): () => boolean {
  return () => {
    const open = handle.fd >= 0;
    handle.close();
    return open;
  };
}
