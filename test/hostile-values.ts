// What a hostile caller passes: wrong types, null, objects whose
// valueOf/toString throw or lie, getters and Proxy traps that count their
// runs. Shared by the unit sweep (fake kernel) and the built-kernel sweep.

/** How many times a hostile value's valueOf/toString/getter/trap ran. */
export const hostile = { touched: 0 };
export const hostileObject = {
  valueOf() {
    hostile.touched++;
    throw new Error('valueOf must not be called');
  },
  toString() {
    hostile.touched++;
    throw new Error('toString must not be called');
  },
  [Symbol.toPrimitive]() {
    hostile.touched++;
    throw new Error('toPrimitive must not be called');
  },
};
export const hostileGetters = Object.defineProperty({}, 'iova', {
  enumerable: true,
  get() {
    hostile.touched++;
    return 0n;
  },
});
export const hostileProxy = new Proxy(
  {},
  {
    getPrototypeOf() {
      hostile.touched++;
      throw new Error('getPrototypeOf trap must not break the library');
    },
    get() {
      hostile.touched++;
      throw new Error('get trap');
    },
  },
);

export const JUNK: unknown[] = [
  undefined,
  null,
  '0',
  '0000:00:03.0\n',
  '',
  -1,
  1.5,
  NaN,
  Infinity,
  2 ** 53,
  -1n,
  1n << 64n,
  true,
  [],
  {},
  Symbol('s'),
  () => 0,
  hostileObject,
  hostileGetters,
  hostileProxy,
];

export function show(v: unknown): string {
  if (typeof v === 'symbol') return 'Symbol()';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'function';
  if (v === hostileObject) return 'hostileObject';
  if (v === hostileGetters) return 'hostileGetters';
  if (v === hostileProxy) return 'hostileProxy';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
