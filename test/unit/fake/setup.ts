// Installs a fresh MockKernel as the native backend around each test.

import assert from 'node:assert/strict';
import { Container, DmaBuffer } from '../../../lib';
import { setNativeBackend } from '../../../lib/native';
import { MockKernel, type MockGroupSpec } from '../../../lib/testing';

export function useFakeKernel(groups?: MockGroupSpec[]): { readonly k: MockKernel } {
  const ctx = { k: undefined as unknown as MockKernel };
  let previous: ReturnType<typeof setNativeBackend>;
  before(() => {
    previous = setNativeBackend(undefined);
  });
  beforeEach(() => {
    ctx.k = new MockKernel(groups);
    setNativeBackend(ctx.k);
  });
  // Restored after the whole describe, so afterEach hooks that close
  // objects still reach this test's fake.
  after(() => {
    setNativeBackend(previous);
  });
  return ctx;
}

/** Asserts fn throws an error with this code, and returns it. */
export function throwsCode(fn: () => unknown, code: string, message?: RegExp): Error & { code: string } {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected an error with code ${code}, nothing was thrown`);
  assert.equal((caught as { code?: string }).code, code, (caught as Error).message);
  if (message) assert.match((caught as Error).message, message);
  return caught as Error & { code: string };
}

export async function rejectsCode(p: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected a rejection with code ${code}`);
  assert.equal((caught as { code?: string }).code, code, (caught as Error).message);
  return caught as Error & { code: string };
}

/** The fake's edu. */
export const EDU = '0000:00:03.0';

/** A container with group 3 attached, the type1 IOMMU set, edu open, and an 8 KiB buffer (not mapped). */
export function openEdu() {
  const container = Container.open();
  const group = container.openGroup(3);
  const iommu = container.setIommu();
  const device = group.openDevice(EDU);
  const buffer = DmaBuffer.allocate(8192);
  return { container, group, iommu, device, buffer };
}
