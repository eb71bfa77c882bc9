// The `api` of the phone-message triggers: `send-phone-message` has only the cache;
// `custom-phone-provider` can also drop the notification (`api.notification.drop`) or
// ask for a retry (`api.notification.retry`). Calls are recorded for core, as for
// post-login.
(function (event, data, record, load) {
  'use strict';
  const api = {};
  const cached = { ...(data.cache || {}) };
  Object.assign(api, {
    cache: {
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
    },
    notification: {
      drop: (reason) => { record('notification.drop', [reason]); return api; },
      retry: (reason) => { record('notification.retry', [reason]); return api; },
    },
  });
  return api;
})
