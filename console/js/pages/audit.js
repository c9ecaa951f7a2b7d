import { api, apiURL } from '../api.js';
import { h, replace, notice, table, badge, short } from '../dom.js';
import { current } from '../app.js';

const pageSize = 50;

/** `datetime-local` input's value (local time) as RFC 3339 UTC; undefined when empty. */
function rfc3339(value) {
  return value ? new Date(value).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

/** The audit trail: filter, page forward, verify the chain, export. */
export async function auditPage(main, { ticket }) {
  const action = h('input', { id: 'audit-action', name: 'action', placeholder: 'restore', size: 14 });
  const actor = h('input', { id: 'audit-actor', name: 'actor', placeholder: 'alice', size: 12 });
  const since = h('input', { id: 'audit-since', name: 'since', type: 'datetime-local' });
  const until = h('input', { id: 'audit-until', name: 'until', type: 'datetime-local' });
  const rows = h('div', { id: 'audit-rows' });
  const pager = h('div', { class: 'actions' });
  const verifyResult = h('div', { id: 'audit-verify-result', 'aria-live': 'polite' });
  // The `after` of each page shown so far, so "Previous" can go back.
  let pages = [undefined];

  async function load(after) {
    const query = new URLSearchParams({ limit: String(pageSize) });
    for (const [key, value] of [['action', action.value.trim()], ['actor', actor.value.trim()], ['since', rfc3339(since.value)], ['until', rfc3339(until.value)], ['after', after]]) {
      if (value !== undefined && value !== '') query.set(key, value);
    }
    let page;
    try {
      page = await api('GET', '/audit?' + query);
    } catch (error) {
      replace(rows, notice('bad', error.message));
      return;
    }
    if (!current(ticket)) return;
    replace(rows, page.items.length
      ? table(['#', 'Time (UTC)', 'Actor', 'Action', 'Target', 'Outcome', 'Reason'], page.items.map((row) => ({
        class: row.outcome === 'failure' || row.outcome === 'denied' ? 'bad' : '',
        cells: [row.seq, row.timestamp.slice(0, 19).replace('T', ' '), row.actor, h('span', { class: 'mono' }, row.action),
          /^[0-9a-f]{64}$/.test(row.target ?? '') ? h('span', { class: 'mono small', title: row.target }, short(row.target)) : h('span', { class: 'mono small' }, row.target ?? ''), badge(row.outcome === 'success' ? 'good' : row.outcome === 'started' ? '' : 'bad', row.outcome), row.reason ?? ''],
      })), { id: 'audit-table' })
      : h('p', { class: 'muted' }, 'No audit row matches.'));
    const position = pages.indexOf(after);
    replace(pager,
      h('span', { class: 'muted' }, 'Page ', position + 1),
      position > 0 ? h('button', { type: 'button', class: 'secondary', onclick: () => load(pages[position - 1]) }, '← Previous') : null,
      page.next_after ? h('button', {
        type: 'button', class: 'secondary', id: 'audit-next', onclick: () => {
          pages = pages.slice(0, position + 1).concat([page.next_after]);
          load(page.next_after);
        },
      }, 'Next →') : null);
  }

  async function verify(event) {
    event.target.disabled = true;
    try {
      const result = await api('GET', '/audit/verify');
      replace(verifyResult, result.ok
        ? notice('good', h('strong', { id: 'audit-chain-state' }, 'Chain intact. '), result.rows, ' rows checked, each linked to the one before and keyed.')
        : notice('bad', h('strong', { id: 'audit-chain-state' }, 'Chain broken'), result.first_bad_seq ? [' at row ', result.first_bad_seq] : '', '. ', result.problem ?? ''));
    } catch (error) {
      replace(verifyResult, notice('bad', error.message));
    } finally {
      event.target.disabled = false;
    }
  }

  const filters = h('form', { class: 'inline', id: 'audit-filter' },
    h('label', { for: 'audit-action' }, 'Action', action),
    h('label', { for: 'audit-actor' }, 'Actor', actor),
    h('label', { for: 'audit-since' }, 'Since', since),
    h('label', { for: 'audit-until' }, 'Until', until),
    h('button', { type: 'submit', id: 'audit-apply' }, 'Filter'));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    pages = [undefined];
    load(undefined);
  });

  replace(main, h('h1', {}, 'Audit trail'),
    h('div', { class: 'panel' },
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'audit-verify', onclick: verify }, 'Verify the chain'),
        h('a', { class: 'button secondary', id: 'export-csv', href: apiURL('/audit/export?format=csv'), download: 'bunker-audit.csv' }, 'Export CSV'),
        h('a', { class: 'button secondary', id: 'export-jsonl', href: apiURL('/audit/export?format=jsonl'), download: 'bunker-audit.jsonl' }, 'Export JSON lines')),
      verifyResult),
    h('div', { class: 'panel' }, filters),
    h('div', { class: 'panel' }, rows, pager));
  await load(undefined);
}
