import { api } from '../api.js';
import { h, replace, table, bytes, when, short, badge } from '../dom.js';
import { roles, current } from '../app.js';

/** The type filter's choices: the API's backup types. */
const types = ['full', 'database', 'files'];

/** When retention could remove a backup (`retention_until`); "held" under a hold, — when the policy keeps it for good. */
export function retentionUntil(backup) {
  if (backup.retention_until) return when(backup.retention_until);
  return backup.held ? 'held' : '—';
}

/** Every backup, newest first, filtered by type and tag in the page (the list is one call). */
export async function backupsPage(main, { ticket, query }) {
  const backups = await api('GET', '/backups?limit=1000');
  if (!current(ticket)) return;
  backups.sort((a, b) => b.created_at.localeCompare(a.created_at));
  const tags = [...new Set(backups.flatMap((b) => b.metadata?.tags ?? []))].sort();

  const type = h('select', { id: 'filter-type', name: 'type' }, h('option', { value: '' }, 'any type'), types.map((t) => h('option', { value: t }, t)));
  const tag = h('select', { id: 'filter-tag', name: 'tag' }, h('option', { value: '' }, 'any tag'), tags.map((t) => h('option', { value: t }, t)));
  const held = h('select', { id: 'filter-held', name: 'held' }, h('option', { value: '' }, 'held or not'), h('option', { value: 'yes' }, 'held only'), h('option', { value: 'no' }, 'not held'));
  type.value = query.get('type') ?? '';
  tag.value = tags.includes(query.get('tag')) ? query.get('tag') : '';
  const list = h('div');
  const count = h('span', { class: 'muted', id: 'backup-count' });

  function draw() {
    const shown = backups.filter((b) => (!type.value || b.metadata?.backup_type === type.value) && (!tag.value || (b.metadata?.tags ?? []).includes(tag.value))
      && (!held.value || (held.value === 'yes') === Boolean(b.held)));
    count.textContent = shown.length + ' of ' + backups.length + ' backups';
    replace(list, shown.length
      ? table(['Created', 'Backup', 'Type', 'Sources', 'Size', 'Tags', 'Retention until', 'Description', 'By'], shown.map((b) => ({
        id: b.id,
        cells: [
          when(b.created_at),
          h('a', { href: '#/backups/' + b.id, class: 'mono' }, short(b.id)),
          b.metadata?.backup_type ?? '—',
          (b.metadata?.sources ?? []).join(', '),
          bytes(b.metadata?.size_bytes),
          [(b.metadata?.tags ?? []).map((t) => [badge(t === 'safety' ? 'warn' : '', t), ' ']), b.held ? badge('bad', 'held') : null],
          retentionUntil(b),
          b.description ?? '',
          b.created_by_name,
        ],
      })), { id: 'backups' })
      : h('p', { class: 'muted' }, backups.length ? 'No backup matches the filter.' : 'No backup yet.'));
  }
  type.addEventListener('change', draw);
  tag.addEventListener('change', draw);
  held.addEventListener('change', draw);
  draw();

  replace(main,
    h('h1', {}, 'Backups'),
    h('div', { class: 'panel' },
      h('form', { class: 'inline', onsubmit: (e) => e.preventDefault() },
        h('label', { for: 'filter-type' }, 'Type', type),
        h('label', { for: 'filter-tag' }, 'Tag', tag),
        h('label', { for: 'filter-held' }, 'Legal hold', held),
        count,
        roles.admin() ? h('a', { class: 'button', href: '#/backup-now', id: 'backup-now-link' }, 'Back up now') : null),
    ),
    h('div', { class: 'panel' }, list));
}
