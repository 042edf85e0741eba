// The one convention for arguments at every public boundary, Node core's own
// (as `fs` uses it):
//   ERR_INVALID_ARG_TYPE  (TypeError)   the value has the wrong type;
//   ERR_INVALID_ARG_VALUE (TypeError)   the right type, but a value that means nothing here;
//   ERR_OUT_OF_RANGE      (RangeError)  a number (or bigint) outside what it may be.
// Each names the argument. Arguments are checked before anything else an
// operation does, so a refusal changes nothing. A caller's value is never
// coerced: no valueOf, toString or getter of a caller's object runs while
// checking or describing it (a hostile valueOf can neither throw from inside
// the library nor change a value between its check and its use).

import { types } from 'node:util';

/** Codes of argument errors, as Node uses them. */
export const ArgCode = {
  TYPE: 'ERR_INVALID_ARG_TYPE',
  VALUE: 'ERR_INVALID_ARG_VALUE',
  RANGE: 'ERR_OUT_OF_RANGE',
} as const;

/** One of the {@link ArgCode} values. */
export type ArgCodeValue = (typeof ArgCode)[keyof typeof ArgCode];

/** A wrong type or a meaningless value; `argument` names it. */
export class VfioArgumentError extends TypeError {
  readonly code: typeof ArgCode.TYPE | typeof ArgCode.VALUE;
  readonly argument: string;
  constructor(code: typeof ArgCode.TYPE | typeof ArgCode.VALUE, argument: string, message: string) {
    super(message);
    this.name = 'VfioArgumentError';
    this.code = code;
    this.argument = argument;
  }
}

/** A number outside its range; `argument` names it. */
export class VfioRangeError extends RangeError {
  readonly code: typeof ArgCode.RANGE = ArgCode.RANGE;
  readonly argument: string;
  constructor(argument: string, message: string) {
    super(message);
    this.name = 'VfioRangeError';
    this.argument = argument;
  }
}

/** 'type string ("0")', 'null', 'an instance of Foo': never throws, never calls the caller's code. */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string': {
      const s = value.length > 40 ? `${value.slice(0, 37)}...` : value;
      return `type string (${JSON.stringify(s)})`;
    }
    case 'number':
    case 'boolean':
      return `type ${typeof value} (${String(value)})`;
    case 'bigint':
      return `type bigint (${value.toString()}n)`;
    case 'symbol':
      return 'type symbol';
    case 'function':
      return 'a function';
    default:
      if (value === null) return 'null';
      return describeObject(value as object);
  }
}

function describeObject(value: object): string {
  if (types.isProxy(value)) return 'a Proxy';
  try {
    if (Array.isArray(value)) return 'an array';
    // A Proxy's getPrototypeOf trap is the caller's code: it may throw.
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto === null || proto === Object.prototype) return 'an object';
    const ctor = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value as unknown;
    const name = typeof ctor === 'function' ? Object.getOwnPropertyDescriptor(ctor, 'name')?.value : undefined;
    return typeof name === 'string' && name ? `an instance of ${name}` : 'an object';
  } catch {
    return 'an object';
  }
}

export function typeError(argument: string, expected: string, value: unknown): VfioArgumentError {
  return new VfioArgumentError(ArgCode.TYPE, argument, `The "${argument}" argument must be ${expected}. Received ${describeValue(value)}`);
}

export function valueError(argument: string, why: string, value: unknown): VfioArgumentError {
  return new VfioArgumentError(ArgCode.VALUE, argument, `The "${argument}" argument ${why}. Received ${describeValue(value)}`);
}

export function rangeError(argument: string, range: string, value: unknown): VfioRangeError {
  return new VfioRangeError(argument, `The value of "${argument}" is out of range. It must be ${range}. Received ${describeValue(value)}`);
}

/**
 * An options object: undefined gives {}, a plain object is read field by
 * field (each field checked by its own reader), anything else is refused.
 * Own data properties only: a getter on an options object is not run.
 */
export function argOptions(value: unknown, argument = 'options'): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || isArray(value) || types.isProxy(value)) throw typeError(argument, 'of type object', value);
  return value as Record<string, unknown>;
}

/** Array.isArray, but a revoked Proxy (for which it throws) is no array. */
function isArray(value: unknown): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return false;
  }
}

/** Read one option as an own data property; an accessor is refused, never run. */
export function optionField(options: Record<string, unknown>, key: string, argument: string): unknown {
  let d: PropertyDescriptor | undefined;
  try {
    d = Object.getOwnPropertyDescriptor(options, key);
  } catch {
    throw typeError(argument, 'a plain value', options);
  }
  if (d === undefined) {
    // Inherited fields (a class instance's prototype) are not options.
    return undefined;
  }
  if (!('value' in d)) throw typeError(argument, 'a plain value, not a getter', undefined);
  return d.value;
}

/** An integer of type number in [min, max]. */
export function argInt(value: unknown, argument: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw typeError(argument, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(argument, `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}

/** A byte count or offset: a safe non-negative integer, given as number or bigint; returned as number. */
export function argSize(value: unknown, argument: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(max)) throw rangeError(argument, `>= 0 and <= ${max}`, value);
    return Number(value);
  }
  if (typeof value !== 'number') throw typeError(argument, 'of type number or bigint', value);
  if (!Number.isInteger(value) || value < 0 || value > max) throw rangeError(argument, `an integer >= 0 and <= ${max}`, value);
  return value;
}

const U64_LIMIT = 1n << 64n;

/** A device address or u64 quantity: bigint, or a safe non-negative integer number; returned as bigint. */
export function argU64(value: unknown, argument: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value >= U64_LIMIT) throw rangeError(argument, '>= 0n and < 2n ** 64n', value);
    return value;
  }
  if (typeof value !== 'number') throw typeError(argument, 'of type bigint or number', value);
  if (!Number.isSafeInteger(value) || value < 0) throw rangeError(argument, 'a safe integer >= 0 (use a bigint above 2 ** 53)', value);
  return BigInt(value);
}

export function argBool(value: unknown, argument: string): boolean {
  if (typeof value !== 'boolean') throw typeError(argument, 'of type boolean', value);
  return value;
}

/** A file descriptor number. */
export function argFd(value: unknown, argument = 'fd'): number {
  return argInt(value, argument, 0, 0x7fffffff);
}

/**
 * A name the kernel takes (a device name, a memfd name): a non-empty string
 * of at most `max` printable characters, no whitespace (a trailing newline
 * from a file must not reach the kernel).
 */
export function argName(value: unknown, argument: string, max = 255): string {
  if (typeof value !== 'string') throw typeError(argument, 'of type string', value);
  // eslint-disable-next-line no-control-regex
  if (value.length === 0 || value.length > max || /[\s\x00-\x1f\x7f/]/.test(value)) {
    throw valueError(argument, `must be 1..${max} printable characters without whitespace or '/'`, value);
  }
  return value;
}

/** One of a fixed set of strings. */
export function argOneOf<T extends string>(value: unknown, argument: string, allowed: readonly T[]): T {
  if (typeof value !== 'string') throw typeError(argument, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  if (!(allowed as readonly string[]).includes(value)) {
    throw valueError(argument, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  }
  return value as T;
}

/** Is `value` an instance of `cls`? Never runs a caller's code (a Proxy's getPrototypeOf trap). */
export function isInstance(value: unknown, cls: { readonly prototype: unknown }): boolean {
  if (value === null || typeof value !== 'object' || types.isProxy(value)) return false;
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  return value instanceof (cls as unknown as Function);
}

/** An instance of one of our classes (a Group, a DmaBuffer...). */
export function argInstance<T>(value: unknown, argument: string, cls: { readonly prototype: T; readonly name: string }, what?: string): T {
  if (!isInstance(value, cls)) throw typeError(argument, `a ${what ?? cls.name}`, value);
  return value as T;
}

/** A Uint8Array (a Buffer is one). */
export function argBytes(value: unknown, argument: string): Uint8Array {
  if (!types.isUint8Array(value)) throw typeError(argument, 'a Uint8Array or Buffer', value);
  return value;
}

/**
 * A real array of at most `max` elements, copied once from its own data
 * properties: the copy is what the caller's code cannot change after the
 * check. A Proxy whose trap throws, or an element that is a getter, is
 * refused (the getter is not run).
 */
export function argArray(value: unknown, argument: string, max = 0x10000): unknown[] {
  if (!isArray(value)) throw typeError(argument, 'an array', value);
  const array = value as unknown[];
  let length: unknown;
  try {
    length = Object.getOwnPropertyDescriptor(array, 'length')?.value;
  } catch {
    length = undefined;
  }
  if (typeof length !== 'number') throw typeError(argument, 'an array', value);
  if (length > max) throw rangeError(`${argument}.length`, `<= ${max}`, length);
  const copy: unknown[] = [];
  for (let i = 0; i < length; i++) {
    let d: PropertyDescriptor | undefined;
    try {
      d = Object.getOwnPropertyDescriptor(array, i);
    } catch {
      throw typeError(argument, 'an array of plain values', value);
    }
    if (d !== undefined && !('value' in d)) throw typeError(`${argument}[${i}]`, 'a plain value, not a getter', undefined);
    copy.push(d?.value);
  }
  return copy;
}
