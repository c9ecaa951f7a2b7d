// The console's shell: the session, the navigation and the hash router (#/backups/<id>).
import { api, onUnauthorized, ApiError } from './api.js';
import { h, replace, notice } from './dom.js';
import { loginPage } from './pages/login.js';
import { overviewPage } from './pages/overview.js';
import { backupsPage } from './pages/backups.js';
import { backupPage } from './pages/backup.js';
import { backupNowPage } from './pages/backup-now.js';
import { auditPage } from './pages/audit.js';
import { usersPage } from './pages/users.js';
import { drillsPage } from './pages/drills.js';

/** Who is logged in ({username, full_name, role}), or null. Kept in memory only. */
export const session = { user: null };

export const roles = {
  admin: () => session.user?.role === 'SYSTEM_ADMIN',
  auditor: () => session.user?.role === 'SYSTEM_ADMIN' || session.user?.role === 'AUDITOR',
};

// The pages, what they are reached by, and who sees them (the server refuses the others anyway).
const pages = [
  { path: /^\/$/, nav: 'Overview', href: '#/', show: overviewPage },
  { path: /^\/backups$/, nav: 'Backups', href: '#/backups', show: backupsPage },
  { path: /^\/backups\/([0-9a-f]{8,64})$/, show: backupPage },
  { path: /^\/backup-now$/, nav: 'Back up now', href: '#/backup-now', show: backupNowPage, allowed: roles.admin },
  { path: /^\/audit$/, nav: 'Audit trail', href: '#/audit', show: auditPage, allowed: roles.auditor },
  { path: /^\/drills$/, nav: 'Drills', href: '#/drills', show: drillsPage, allowed: roles.auditor },
  { path: /^\/users$/, nav: 'Users', href: '#/users', show: usersPage, allowed: roles.admin },
];

const main = document.getElementById('main');
// Each route change bumps it, so a page whose data arrives after the user left draws nothing.
let generation = 0;

/** Whether the page drawn for `ticket` is still the one on screen. */
export function current(ticket) {
  return ticket === generation;
}

function currentPath() {
  return (location.hash.replace(/^#/, '') || '/').split('?')[0];
}

function drawChrome() {
  const bar = document.getElementById('topbar');
  bar.hidden = !session.user;
  if (!session.user) return;
  const path = currentPath();
  replace(document.getElementById('nav'), pages.filter((p) => p.nav && (!p.allowed || p.allowed())).map((p) =>
    h('a', { href: p.href, 'aria-current': p.href.slice(1) === path || (p.href !== '#/' && path.startsWith(p.href.slice(1))) ? 'page' : null }, p.nav)));
  replace(document.getElementById('who'), session.user.full_name || session.user.username, ' ',
    h('span', { class: 'role', id: 'role' }, session.user.role));
}

/** Draws the page the address names. */
export async function route() {
  generation += 1;
  const ticket = generation;
  drawChrome();
  if (!session.user) {
    loginPage(main, loggedIn);
    return;
  }
  const path = currentPath();
  const page = pages.find((p) => p.path.test(path));
  if (!page) {
    replace(main, h('h1', {}, 'Not found'), notice('bad', 'The console has no page ', path, '. ', h('a', { href: '#/' }, 'Go to the overview.')));
    return;
  }
  if (page.allowed && !page.allowed()) {
    replace(main, h('h1', {}, 'Not allowed'), notice('bad', 'Your role, ', session.user.role, ', may not use this page.'));
    return;
  }
  replace(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    await page.show(main, { ticket, params: path.match(page.path).slice(1), query: new URLSearchParams(location.hash.split('?')[1] ?? '') });
  } catch (error) {
    if (!current(ticket)) return;
    if (error instanceof ApiError && error.status === 401) return;
    replace(main, h('h1', {}, 'Something went wrong'), notice('bad', error.message));
  }
  if (current(ticket)) main.focus({ preventScroll: true });
}

function loggedIn(user) {
  session.user = user;
  if (location.hash === '' || location.hash === '#/login') location.hash = '#/';
  route();
}

async function logout() {
  try {
    await api('DELETE', '/auth/session');
  } finally {
    session.user = null;
    location.hash = '#/';
    route();
  }
}

onUnauthorized(() => {
  if (!session.user) return;
  session.user = null;
  route();
});

document.getElementById('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);

// A reload keeps the session: the cookie is still there, so ask who it belongs to.
try {
  session.user = await api('GET', '/auth/me');
} catch {
  session.user = null;
}
route();
