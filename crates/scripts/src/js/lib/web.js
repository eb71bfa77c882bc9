// URLSearchParams, Headers, Response and fetch (WHATWG shapes). Loaded on first use.
(function (host, load) {
  'use strict';
  const { Buffer } = load('buffer');
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

  // The call itself is synchronous in the host (each execution has its own thread);
  // the promise keeps the shape actions are written for.
  const fetch = async (input, init = {}) => {
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

  return { URLSearchParams, Headers, Response, fetch };
})
