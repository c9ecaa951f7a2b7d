// Calls to /api/v1, authenticated by the session cookie that POST /auth/session set. The token
// itself is in an HttpOnly cookie: no script, ours or an injected one, can read it. Requests
// that change something carry the session's CSRF token, which the server checks.

/** An answer other than 2xx: the HTTP status and the API's {"error", "message"}. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorizedHandler = null;

/** What to do when the session has ended (a 401 on any call but the login). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function csrfToken() {
  const entry = document.cookie.split('; ').find((c) => c.startsWith('bunker_csrf='));
  return entry ? decodeURIComponent(entry.slice('bunker_csrf='.length)) : '';
}

/** `method` on `/api/v1` + `path`, with `body` as JSON; the decoded answer (null for 204). */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch('/api/v1' + path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, 'network', 'The server did not answer (' + error.message + '). Is bunker serve running?');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error ?? 'http_' + response.status, data?.message ?? response.statusText);
    if (response.status === 401 && path !== '/auth/session' && unauthorizedHandler) unauthorizedHandler();
    throw error;
  }
  return data;
}

/** The address of an API route, for links the browser follows itself (downloads). */
export function apiURL(path) {
  return '/api/v1' + path;
}
