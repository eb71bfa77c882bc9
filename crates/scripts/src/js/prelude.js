// What an action finds around it, as in Node: console, timers and `require` of the
// built-in modules, with Buffer, URLSearchParams, Headers, Response, fetch and crypto as
// globals. Only console and timers are made up front: parsing JavaScript is most of
// what an execution costs, so the rest (js/lib/*.js) is parsed the first time an action
// touches it. `host` holds the engine's functions (logging, HTTP through the outbound
// guard, hashing, randomness); it is not left where the action can see it.
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

  const libs = {};
  const load = (name) => libs[name] || (libs[name] = host.lib(name)(host, load));
  // A global made on first use, and replaceable like any other.
  const lazy = (name, lib, key) => {
    const settle = (value) => Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() { const v = load(lib)[key || name]; settle(v); return v; },
      set(v) { settle(v); },
    });
  };
  for (const name of ['Buffer', 'btoa', 'atob']) lazy(name, 'buffer');
  for (const name of ['URLSearchParams', 'Headers', 'Response', 'fetch']) lazy(name, 'web');
  lazy('crypto', 'crypto', 'webCrypto');

  const vendorDeps = () => {
    const web = load('web');
    return { Buffer: load('buffer').Buffer, URLSearchParams: web.URLSearchParams, fetch: web.fetch, camel: load('util').camel };
  };
  const modules = {
    crypto: () => load('crypto').crypto,
    axios: () => load('axios').axios,
    twilio: () => host.vendor('twilio', vendorDeps()),
    plivo: () => host.vendor('plivo', vendorDeps()),
  };
  const loaded = {};
  const require = (name) => {
    const n = String(name).replace(/^node:/, '');
    if (!Object.prototype.hasOwnProperty.call(modules, n)) throw new Error(`Cannot find module '${name}'`);
    if (!(n in loaded)) loaded[n] = modules[n]();
    return loaded[n];
  };

  return { require, timers: timerControl, load };
})
