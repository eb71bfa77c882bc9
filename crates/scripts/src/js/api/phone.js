// The `api` of the phone-message triggers: `send-phone-message` has only the cache;
// `custom-phone-provider` can also drop the notification (`api.notification.drop`) or
// ask for a retry (`api.notification.retry`). Calls are recorded for core, as for
// post-login.
(function (event, data, record, load) {
  'use strict';
  const api = {};
  Object.assign(api, {
    notification: {
      drop: (reason) => { record('notification.drop', [reason]); return api; },
      retry: (reason) => { record('notification.retry', [reason]); return api; },
    },
  });
  let cache;
  Object.defineProperty(api, 'cache', { get: () => cache || (cache = load('util').makeCache(data.cache, record)) });
  return api;
})
