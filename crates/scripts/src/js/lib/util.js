// Small helpers of the api objects and vendor modules, loaded on first use: `api.cache`
// (entries the engine was given, changed here and recorded for core; Auth0's limits: 15
// minutes by default, a day at most) and Twilio's and Plivo's key case.
(function () {
  'use strict';
  const makeCache = (given, record) => {
    const cached = { ...(given || {}) };
    return {
      get: (key) => {
        const e = cached[key];
        return e && e.expires_at > Date.now() ? { value: e.value, expires_at: e.expires_at } : undefined;
      },
      set: (key, value, options) => {
        const o = options || {};
        let at = Date.now() + (o.ttl !== undefined ? Number(o.ttl) : 15 * 60 * 1000);
        if (o.expires_at !== undefined) at = Math.min(at, Number(o.expires_at));
        at = Math.min(at, Date.now() + 24 * 3600 * 1000);
        cached[key] = { value: String(value), expires_at: at };
        record('cache.set', [String(key), String(value), at]);
        return { type: 'success' };
      },
      delete: (key) => {
        delete cached[key];
        record('cache.delete', [String(key)]);
        return { type: 'success' };
      },
    };
  };
  // Twilio's and Plivo's answers have snake_case keys; their Node clients give camelCase.
  const camel = (v) => {
    if (Array.isArray(v)) return v.map(camel);
    if (!v || typeof v !== 'object') return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k.replace(/_([a-z])/g, (_, c) => c.toUpperCase())] = camel(x);
    return out;
  };
  return { makeCache, camel };
})
