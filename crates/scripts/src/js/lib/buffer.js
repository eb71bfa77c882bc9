// Node's Buffer, as far as actions use it; `btoa` and `atob`. Loaded on first use.
(function (host) {
  'use strict';
  // Bytes are kept as lowercase hex: the host's hashing and encoding speak it.
  class Buffer {
    constructor(hex) { this._hex = hex; }
    static from(v, encoding) {
      if (v instanceof Buffer) return new Buffer(v._hex);
      if (typeof v === 'string') {
        if (encoding === 'hex') return new Buffer(v.toLowerCase());
        if (encoding === 'base64' || encoding === 'base64url') return new Buffer(host.unbase64(v));
        return new Buffer(host.utf8(v));
      }
      if (Array.isArray(v) || v instanceof Uint8Array) {
        return new Buffer(Array.from(v, (b) => (b & 255).toString(16).padStart(2, '0')).join(''));
      }
      throw new TypeError('Buffer.from takes a string, an array of bytes or a Buffer');
    }
    static isBuffer(v) { return v instanceof Buffer; }
    static concat(list) { return new Buffer(list.map((b) => Buffer.from(b)._hex).join('')); }
    get length() { return this._hex.length / 2; }
    toString(encoding) {
      if (encoding === 'hex') return this._hex;
      if (encoding === 'base64') return host.base64(this._hex, false);
      if (encoding === 'base64url') return host.base64(this._hex, true);
      return host.unutf8(this._hex);
    }
    equals(other) { return other instanceof Buffer && other._hex === this._hex; }
    toJSON() { return { type: 'Buffer', data: Array.from(this.bytes()) }; }
    bytes() {
      const out = new Uint8Array(this.length);
      for (let i = 0; i < out.length; i++) out[i] = parseInt(this._hex.substr(2 * i, 2), 16);
      return out;
    }
  }
  const hexOf = (v, encoding) => Buffer.from(v, encoding)._hex;
  const btoa = (s) => host.base64(Array.from(String(s), (c) => (c.charCodeAt(0) & 255).toString(16).padStart(2, '0')).join(''), false);
  const atob = (s) => Buffer.from(String(s), 'base64').bytes().reduce((out, b) => out + String.fromCharCode(b), '');

  return { Buffer, hexOf, btoa, atob };
})
