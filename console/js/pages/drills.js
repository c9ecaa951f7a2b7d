import { api } from '../api.js';
import { h, replace, table, when, short, badge } from '../dom.js';
import { current } from '../app.js';
import { lineChart } from '../chart.js';

/** An audit row's details: a JSON object kept as text. */
function details(row) {
  if (!row.details) return {};
  if (typeof row.details !== 'string') return row.details;
  try {
    return JSON.parse(row.details);
  } catch {
    return {};
  }
}

/**
 * Every drill row of the audit trail, oldest first. The trail answers at most 1000 rows a page,
 * oldest first, so one page would stop at the oldest 500 drills (two rows each) and hide every
 * newer one: the pages are followed to the end. Null if the page was left meanwhile.
 */
async function drillRows(ticket) {
  const rows = [];
  let after;
  do {
    const query = new URLSearchParams({ action: 'drill', limit: '1000' });
    if (after !== undefined) query.set('after', String(after));
    const page = await api('GET', '/audit?' + query);
    if (!current(ticket)) return null;
    rows.push(...page.items);
    after = page.next_after ?? undefined;
  } while (after !== undefined);
  return rows;
}

/** Restore drills from the audit trail: each one's result and measured RTO, and RTO over time. */
export async function drillsPage(main, { ticket }) {
  const items = await drillRows(ticket);
  if (items === null) return;
  // The end row of each drill carries its outcome and measured RTO; the start row neither.
  const drills = items.filter((row) => row.action === 'drill' && row.outcome !== 'started').map((row) => ({ ...row, rto: details(row).rto_seconds })).reverse();
  const timed = drills.filter((row) => row.rto).map((row) => ({ at: row.timestamp, value: Number(row.rto), ok: row.outcome === 'success' })).reverse();
  replace(main, h('h1', {}, 'Restore drills'),
    h('p', { class: 'muted' }, 'A drill restores a backup into a scratch place, checks it and times it: the time is the measured recovery time (RTO). Run one from a backup’s page, or on a schedule (job = "drill").'),
    timed.length > 1 ? h('section', { class: 'panel chart' }, h('h2', {}, 'Measured RTO over time (seconds)'), lineChart(timed)) : null,
    h('section', { class: 'panel' }, drills.length
      ? table(['Time (UTC)', 'Backup', 'Result', 'Measured RTO', 'By'], drills.map((row) => ({
        class: row.outcome === 'success' ? '' : 'bad',
        cells: [row.timestamp.slice(0, 19).replace('T', ' '),
          /^[0-9a-f]{64}$/.test(row.target ?? '') ? h('a', { href: '#/backups/' + row.target, class: 'mono' }, short(row.target)) : row.target ?? '',
          badge(row.outcome === 'success' ? 'good' : 'bad', row.outcome === 'success' ? 'passed' : row.outcome),
          row.rto ? Number(row.rto).toFixed(1) + ' s' : '—', row.actor],
      })), { id: 'drills' })
      : h('p', { class: 'muted' }, 'No drill has run yet.')));
}
