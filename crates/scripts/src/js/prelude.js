// What an action finds around it, as in Node: console, Buffer, URLSearchParams, fetch,
// timers and `require` of the built-in modules. `host` holds the engine's functions
// (logging, HTTP through the outbound guard, hashing, randomness); it is not left
// where the action can see it.
(function (host) {
  'use strict';

  const show = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return String(v.stack || v);
    try {
      const s = JSON.stringify(v);
      return s === undefined ? String(v) : s;
    } catch (e) {
      return String(v);
    }
  };
  const say = (level) => (...args) => host.log(level, args.map(show).join(' '));
  globalThis.console = {
    log: say('log'), info: say('info'), warn: say('warn'), error: say('error'), debug: say('log'), trace: say('log'),
  };

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
  globalThis.Buffer = Buffer;
  globalThis.btoa = (s) => host.base64(Array.from(String(s), (c) => (c.charCodeAt(0) & 255).toString(16).padStart(2, '0')).join(''), false);
  globalThis.atob = (s) => Buffer.from(String(s), 'base64').bytes().reduce((out, b) => out + String.fromCharCode(b), '');

  const encode = (s) => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  const decode = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
  class URLSearchParams {
    constructor(init) {
      this._p = [];
      if (typeof init === 'string') {
        for (const part of init.replace(/^\?/, '').split('&')) {
          if (!part) continue;
          const at = part.indexOf('=');
          this._p.push(at < 0 ? [decode(part), ''] : [decode(part.slice(0, at)), decode(part.slice(at + 1))]);
        }
      } else if (init) {
        const pairs = init instanceof URLSearchParams ? init._p : Array.isArray(init) ? init : Object.entries(init);
        for (const [k, v] of pairs) if (v !== undefined) this._p.push([String(k), String(v)]);
      }
    }
    append(k, v) { this._p.push([String(k), String(v)]); }
    set(k, v) { this.delete(k); this.append(k, v); }
    get(k) { const e = this._p.find(([n]) => n === k); return e ? e[1] : null; }
    getAll(k) { return this._p.filter(([n]) => n === k).map((e) => e[1]); }
    has(k) { return this._p.some(([n]) => n === k); }
    delete(k) { this._p = this._p.filter(([n]) => n !== k); }
    forEach(f) { this._p.forEach(([k, v]) => f(v, k, this)); }
    entries() { return this._p.map((e) => [e[0], e[1]])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._p.map(([k, v]) => encode(k) + '=' + encode(v)).join('&'); }
  }
  globalThis.URLSearchParams = URLSearchParams;

  class Headers {
    constructor(init) {
      this._h = {};
      if (!init) return;
      const pairs = init instanceof Headers ? Object.entries(init._h) : Array.isArray(init) ? init : Object.entries(init);
      for (const [k, v] of pairs) if (v !== undefined && v !== null) this._h[String(k).toLowerCase()] = String(v);
    }
    get(k) { const v = this._h[String(k).toLowerCase()]; return v === undefined ? null : v; }
    set(k, v) { this._h[String(k).toLowerCase()] = String(v); }
    has(k) { return String(k).toLowerCase() in this._h; }
    delete(k) { delete this._h[String(k).toLowerCase()]; }
    append(k, v) {
      const key = String(k).toLowerCase();
      this._h[key] = key in this._h ? this._h[key] + ', ' + v : String(v);
    }
    forEach(f) { for (const [k, v] of Object.entries(this._h)) f(v, k, this); }
    entries() { return Object.entries(this._h)[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
  }
  globalThis.Headers = Headers;

  class Response {
    constructor(r) {
      this.status = r.status;
      this.statusText = r.statusText || '';
      this.ok = r.status >= 200 && r.status < 300;
      this.headers = new Headers(r.headers);
      this.url = r.url;
      this._body = r.body;
      this.bodyUsed = false;
    }
    async text() { this.bodyUsed = true; return this._body; }
    async json() { this.bodyUsed = true; return JSON.parse(this._body); }
  }
  globalThis.Response = Response;

  // The call itself is synchronous in the host (each execution has its own thread);
  // the promise keeps the shape actions are written for.
  globalThis.fetch = async (input, init = {}) => {
    const url = String(input && typeof input === 'object' && input.url ? input.url : input);
    const headers = new Headers(init.headers);
    let body = init.body;
    if (body instanceof URLSearchParams) {
      body = body.toString();
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    } else if (body instanceof Buffer) {
      body = body.toString();
    } else if (body !== undefined && body !== null && typeof body !== 'string') {
      body = String(body);
    }
    const request = { url, method: String(init.method || 'GET').toUpperCase(), headers: headers._h, body: body == null ? null : body };
    return new Response(JSON.parse(host.fetch(JSON.stringify(request))));
  };

  let timerIds = 0;
  const timers = new Map();
  globalThis.setTimeout = (fn, ms = 0, ...args) => {
    const id = ++timerIds;
    timers.set(id, { at: Date.now() + Math.max(0, Number(ms) || 0), fn, args });
    return id;
  };
  globalThis.clearTimeout = (id) => { timers.delete(id); };
  globalThis.setImmediate = (fn, ...args) => globalThis.setTimeout(fn, 0, ...args);
  // For the engine's loop: milliseconds to the next timer (-1: none), and firing those due.
  const timerControl = {
    next() {
      let at = -1;
      for (const t of timers.values()) if (at < 0 || t.at < at) at = t.at;
      return at < 0 ? -1 : Math.max(0, at - Date.now());
    },
    fire() {
      const now = Date.now();
      for (const [id, t] of [...timers]) {
        if (t.at > now) continue;
        timers.delete(id);
        if (typeof t.fn === 'function') t.fn(...t.args);
      }
    },
  };

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
  globalThis.crypto = {
    randomUUID: crypto.randomUUID,
    getRandomValues(array) {
      const bytes = Buffer.from(host.random(array.length), 'hex').bytes();
      for (let i = 0; i < array.length; i++) array[i] = bytes[i];
      return array;
    },
  };

  const axiosCall = async (config) => {
    let url = String(config.url || '');
    if (config.baseURL && !/^https?:\/\//i.test(url)) url = config.baseURL.replace(/\/$/, '') + '/' + url.replace(/^\//, '');
    if (config.params) {
      const q = new URLSearchParams(config.params).toString();
      if (q) url += (url.includes('?') ? '&' : '?') + q;
    }
    const headers = new Headers(config.headers);
    let body = config.data;
    if (body instanceof URLSearchParams) {
      body = body.toString();
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded');
    } else if (body !== undefined && body !== null && typeof body === 'object' && !(body instanceof Buffer)) {
      body = JSON.stringify(body);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    }
    if (config.auth) {
      headers.set('authorization', 'Basic ' + Buffer.from(`${config.auth.username}:${config.auth.password}`).toString('base64'));
    }
    if (!headers.has('accept')) headers.set('accept', 'application/json, text/plain, */*');
    const r = await fetch(url, { method: String(config.method || 'get').toUpperCase(), headers, body });
    const text = await r.text();
    let data = text;
    try { data = JSON.parse(text); } catch (e) { /* not JSON: the text */ }
    const response = { data, status: r.status, statusText: r.statusText, headers: r.headers._h, config };
    const ok = config.validateStatus ? config.validateStatus(r.status) : r.status >= 200 && r.status < 300;
    if (!ok) {
      const e = new Error(`Request failed with status code ${r.status}`);
      Object.assign(e, { response, config, isAxiosError: true, code: r.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST' });
      throw e;
    }
    return response;
  };
  const makeAxios = (defaults) => {
    const merge = (c) => ({ ...defaults, ...c, headers: { ...(defaults.headers || {}), ...((c && c.headers) || {}) } });
    const axios = (c, more) => (typeof c === 'string' ? axiosCall(merge({ ...more, url: c })) : axiosCall(merge(c)));
    for (const m of ['get', 'delete', 'head', 'options']) axios[m] = (url, c) => axiosCall(merge({ ...c, method: m, url }));
    for (const m of ['post', 'put', 'patch']) axios[m] = (url, data, c) => axiosCall(merge({ ...c, method: m, url, data }));
    axios.request = (c) => axiosCall(merge(c));
    axios.create = (d) => makeAxios({ ...defaults, ...d });
    axios.defaults = defaults;
    axios.isAxiosError = (e) => !!(e && e.isAxiosError);
    axios.default = axios;
    return axios;
  };

  const modules = {
    crypto: () => crypto,
    axios: () => makeAxios({}),
    twilio: () => host.vendor('twilio', { Buffer, URLSearchParams, fetch: globalThis.fetch }),
    plivo: () => host.vendor('plivo', { Buffer, URLSearchParams, fetch: globalThis.fetch }),
  };
  const loaded = {};
  const require = (name) => {
    const n = String(name).replace(/^node:/, '');
    if (!Object.prototype.hasOwnProperty.call(modules, n)) throw new Error(`Cannot find module '${name}'`);
    if (!(n in loaded)) loaded[n] = modules[n]();
    return loaded[n];
  };

  return { require, timers: timerControl, Buffer };
})
