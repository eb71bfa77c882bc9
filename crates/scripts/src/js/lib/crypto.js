// require('crypto') and the global `crypto`. Loaded on first use.
(function (host, load) {
  'use strict';
  const { Buffer, hexOf } = load('buffer');
  const algorithm = (name) => {
    const n = String(name).toLowerCase().replace('-', '');
    if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(n)) throw new Error(`Digest method not supported: ${name}`);
    return n;
  };
  class Hash {
    constructor(name, keyHex) { this._alg = algorithm(name); this._key = keyHex; this._data = ''; }
    update(v, encoding) { this._data += hexOf(v, encoding); return this; }
    digest(encoding) {
      const out = new Buffer(host.digest(this._alg, this._key === null ? '' : this._key, this._data, this._key !== null));
      return encoding ? out.toString(encoding) : out;
    }
  }
  const crypto = {
    randomUUID: () => host.uuid(),
    randomBytes: (n) => new Buffer(host.random(Number(n))),
    randomInt: (min, max) => {
      if (max === undefined) { max = min; min = 0; }
      const span = max - min;
      const r = parseInt(host.random(6), 16);
      return min + (r % span);
    },
    createHash: (name) => new Hash(name, null),
    createHmac: (name, key) => new Hash(name, hexOf(key)),
    timingSafeEqual: (a, b) => {
      const [x, y] = [Buffer.from(a)._hex, Buffer.from(b)._hex];
      if (x.length !== y.length) throw new RangeError('Input buffers must have the same byte length');
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
      return diff === 0;
    },
  };
  const webCrypto = {
    randomUUID: crypto.randomUUID,
    getRandomValues(array) {
      const bytes = Buffer.from(host.random(array.length), 'hex').bytes();
      for (let i = 0; i < array.length; i++) array[i] = bytes[i];
      return array;
    },
  };

  return { crypto, webCrypto };
})
