// require('axios'): get/post/put/patch/delete/head/options, create, over fetch. Loaded on first use.
(function (host, load) {
  'use strict';
  const { Buffer } = load('buffer');
  const { URLSearchParams, Headers, fetch } = load('web');
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

  return { axios: makeAxios({}) };
})
