// The `api` of a post-login action (Auth0's PostLoginAPI). Every method is recorded,
// in order, for core to act on once the action finishes; the few that answer
// something (`canRedirect`, `encodeToken`, `validateToken`, `cache.get`) answer from
// what the engine was given. Methods return `api`, so calls chain as in Auth0.
(function (event, data, record, load) {
  'use strict';
  const api = {};
  const rec = (name) => (...args) => { record(name, args); return api; };
  event.transaction = event.transaction || {};
  event.transaction.metadata = event.transaction.metadata || {};
  Object.assign(api, {
    access: { deny: rec('access.deny') },
    accessToken: {
      setCustomClaim: rec('accessToken.setCustomClaim'),
      addScope: rec('accessToken.addScope'),
      removeScope: rec('accessToken.removeScope'),
    },
    idToken: { setCustomClaim: rec('idToken.setCustomClaim') },
    authentication: {
      challengeWith: rec('authentication.challengeWith'),
      challengeWithAny: rec('authentication.challengeWithAny'),
      enrollWith: rec('authentication.enrollWith'),
      enrollWithAny: rec('authentication.enrollWithAny'),
      recordMethod: rec('authentication.recordMethod'),
    },
    multifactor: { enable: rec('multifactor.enable') },
    redirect: {
      canRedirect: () => data.canRedirect === true,
      sendUserTo: rec('redirect.sendUserTo'),
      encodeToken: (options) => load('tokens').encodeToken(event, data, options),
      validateToken: (options) => load('tokens').validateToken(event, data, options),
    },
    user: { setAppMetadata: rec('user.setAppMetadata'), setUserMetadata: rec('user.setUserMetadata') },
    transaction: {
      setMetadata: (key, value) => {
        event.transaction.metadata[key] = value;
        record('transaction.setMetadata', [key, value]);
        return api;
      },
    },
  });
  let cache;
  Object.defineProperty(api, 'cache', { get: () => cache || (cache = load('util').makeCache(data.cache, record)) });
  return api;
})
