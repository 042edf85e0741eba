// The books lib/iommu.ts kept before IovaBooks, copied for books.js to
// compare against: a sorted array (binary search, splice in and out) and a
// linear findFree in BigInt arithmetic. Items carry an `end` getter, as
// DmaMapping does.
'use strict';

class SortedBooks {
  items = [];

  get size() {
    return this.items.length;
  }

  #lowerBound(iova) {
    const ms = this.items;
    let lo = 0;
    let hi = ms.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ms[mid].iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(m) {
    this.items.splice(this.#lowerBound(m.iova), 0, m);
  }

  remove(m) {
    const i = this.#lowerBound(m.iova);
    if (this.items[i] !== m) return false;
    this.items.splice(i, 1);
    return true;
  }

  findFree(size, alignment, windows) {
    for (const { start, end } of windows) {
      let candidate = alignUp(start, alignment);
      for (const m of this.items) {
        if (m.end <= candidate) continue;
        if (m.iova >= candidate + size) break;
        candidate = alignUp(m.end, alignment);
      }
      if (candidate + size - 1n <= end) return candidate;
    }
    return undefined;
  }
}

function alignUp(v, a) {
  return ((v + a - 1n) / a) * a;
}

module.exports = { SortedBooks };
