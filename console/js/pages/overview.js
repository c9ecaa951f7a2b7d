import { api, ApiError } from '../api.js';
import { h, replace, notice, table, bytes, when, age, hoursSince, short, badge } from '../dom.js';
import { roles, current } from '../app.js';
import { jobsPanel } from './jobs.js';
import { sizeChart, durationChart, addedPerDayChart, growthChart } from '../chart.js';

// DermAI's thresholds: a source with no backup for 25 hours, or a repository with less than
// 20 % free space, is red.
export const maxBackupAgeHours = 25;
export const minFreePercent = 20;
/** How often the overview is drawn again while a job runs. */
const refreshMilliseconds = 3000;

/** Data a role may not read is shown as such, not as an error. */
async function optional(promise) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return null;
    throw error;
  }
}

function runCard(title, run, id) {
  if (!run) return h('div', { class: 'panel card', id }, h('h2', {}, title), h('div', { class: 'value' }, 'never'), h('div', { class: 'muted small' }, 'No run recorded yet.'));
  const ok = run.outcome === 'success';
  return h('div', { class: 'panel card ' + (ok ? 'good' : 'bad'), id },
    h('h2', {}, title),
    h('div', { class: 'value' }, ok ? 'Passed' : 'Failed'),
    h('div', { class: 'muted small' }, when(run.time), ' · ', age(hoursSince(run.time)), ' ago'),
    run.target ? h('div', { class: 'small mono' }, 'backup ', short(run.target)) : null,
    run.details?.rto_seconds ? h('div', { class: 'small' }, 'Measured RTO: ', Number(run.details.rto_seconds).toFixed(1), ' s') : null);
}

/** Every source's health at a glance. */
export async function overviewPage(main, { ticket }) {
  const [stats, health, jobs, backups] = await Promise.all([
    api('GET', '/stats'),
    roles.auditor() ? optional(api('GET', '/health/detail')) : null,
    roles.auditor() ? optional(api('GET', '/jobs?limit=20')) : null,
    api('GET', '/backups?limit=200'),
  ]);
  if (!current(ticket)) return;

  const sources = [
    ...(stats.sources ?? []).map((s) => ({ name: s.name, kind: s.kind, last: s.last_backup, snapshot: s.snapshot })),
    ...(stats.sources_never_backed_up ?? []).map((name) => ({ name, kind: '', last: null, snapshot: null })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  // A PostgreSQL source with archived WAL can be restored up to its newest WAL: that, not its
  // last base backup, is its newest restorable point.
  const wal = new Map((stats.wal ?? []).filter((w) => w.window_end).map((w) => [w.source, w]));
  for (const s of sources) {
    const archive = wal.get(s.name);
    s.restorable = archive && (!s.last || archive.window_end > s.last) ? archive.window_end : s.last;
  }
  const sourceRows = sources.map((s) => {
    const hours = hoursSince(s.restorable);
    const late = hours === null || hours > maxBackupAgeHours;
    return {
      class: late ? 'bad' : '', id: s.name,
      cells: [
        h('strong', {}, s.name), s.kind,
        when(s.last),
        wal.has(s.name) ? [when(s.restorable), h('div', { class: 'muted small' }, 'from archived WAL, since ', when(wal.get(s.name).window_start))] : when(s.restorable),
        h('span', { class: late ? 'text-bad' : 'text-good' }, age(hours)),
        late ? badge('bad', hours === null ? 'never backed up' : 'older than ' + maxBackupAgeHours + ' h') : badge('good', 'OK'),
        s.snapshot ? h('a', { href: '#/backups/' + encodeURIComponent(s.snapshot) }, short(s.snapshot)) : '—',
      ],
    };
  });

  const free = health?.space ?? (stats.filesystem_bytes ? { free_bytes: stats.free_bytes, total_bytes: stats.filesystem_bytes, free_percent: 100 * stats.free_bytes / stats.filesystem_bytes } : null);
  const lowSpace = free && free.free_percent < minFreePercent;
  const anyLate = sourceRows.some((r) => r.class === 'bad');

  const cards = h('div', { class: 'grid' },
    h('div', { class: 'panel card ' + (anyLate ? 'bad' : 'good'), id: 'card-rpo' },
      h('h2', {}, 'Achieved RPO'),
      h('div', { class: 'value' }, sources.length ? age(Math.max(...sources.map((s) => hoursSince(s.restorable) ?? Infinity))) : '—'),
      h('div', { class: 'muted small' }, 'Age of the newest restorable point of the source furthest behind; red past ', maxBackupAgeHours, ' h.')),
    h('div', { class: 'panel card ' + (free ? (lowSpace ? 'bad' : 'good') : ''), id: 'card-space' },
      h('h2', {}, 'Free space'),
      h('div', { class: 'value' }, free ? free.free_percent.toFixed(0) + ' %' : 'unknown'),
      h('div', { class: 'muted small' }, free ? bytes(free.free_bytes) + ' free of ' + bytes(free.total_bytes) + '; red under ' + minFreePercent + ' %.' : 'The storage does not tell.')),
    health ? runCard('Last verify', health.last_verify, 'card-verify') : null,
    health ? runCard('Last restore drill', health.last_drill, 'card-drill') : null,
    h('div', { class: 'panel card', id: 'card-repository' },
      h('h2', {}, 'Repository'),
      h('div', { class: 'value' }, bytes(stats.stored_bytes)),
      h('div', { class: 'muted small' }, stats.snapshots, ' backups · dedup ×', (stats.deduplication_ratio ?? 0).toFixed(1),
        ' · compression ×', (stats.compression_ratio ?? 0).toFixed(1), stats.held_snapshots ? ' · ' + stats.held_snapshots + ' held' : '')),
    health ? h('div', { class: 'panel card ' + (health.notifications_failed ? 'bad' : ''), id: 'card-notifications' },
      h('h2', {}, 'Notifications'),
      h('div', { class: 'value' }, health.notifications_failed ? health.notifications_failed + ' failed' : 'none failed'),
      h('div', { class: 'muted small' }, health.notifications_waiting, ' waiting to be sent.')) : null);

  // The server's alerts, and the sources past the DermAI threshold as this page counts them.
  const problems = [
    ...(health?.problems ?? []),
    ...sources.filter((s) => (hoursSince(s.restorable) ?? Infinity) > maxBackupAgeHours)
      .map((s) => s.restorable ? `${s.name}: no restorable point for ${age(hoursSince(s.restorable))}` : `${s.name}: never backed up`),
  ];
  const alerts = problems.length
    ? notice('bad', h('strong', {}, 'Alerts in force: '), h('ul', { id: 'alerts' }, problems.map((p) => h('li', {}, p))))
    : notice('good', 'No alerts: every check is within its threshold.');

  const schedule = health?.scheduler?.length
    ? h('section', { class: 'panel' }, h('h2', {}, 'Next scheduled runs'),
      table(['Job', 'Schedule', 'Next run'], health.scheduler.map((s) => [s.job + (s.backup_type ? ' (' + s.backup_type + ')' : ''), h('span', { class: 'mono' }, s.cron), when(s.next_run)])))
    : null;

  replace(main,
    h('h1', {}, 'Overview'),
    alerts,
    cards,
    h('section', { class: 'panel' }, h('h2', {}, 'Sources'),
      sourceRows.length ? table(['Source', 'Kind', 'Last backup', 'Restorable up to', 'Achieved RPO', 'Status', 'Backup'], sourceRows, { id: 'sources' })
        : h('p', { class: 'muted' }, 'No source is configured.')),
    jobs ? jobsPanel(jobs) : null,
    h('div', { class: 'grid' },
      backups.length > 1 ? h('section', { class: 'panel chart' }, h('h2', {}, 'Backup sizes'), sizeChart(backups)) : null,
      backups.length > 1 ? h('section', { class: 'panel chart', id: 'added-per-day' }, h('h2', {}, 'Data added per day'), addedPerDayChart(backups)) : null,
      backups.length > 1 ? h('section', { class: 'panel chart', id: 'growth' }, h('h2', {}, 'Repository growth (kept backups)'), growthChart(backups)) : null,
      jobs?.filter((job) => job.finished_at).length > 1 ? h('section', { class: 'panel chart', id: 'durations' }, h('h2', {}, 'Job durations (backup, restore, verify, drill, export)'), durationChart(jobs)) : null),
    schedule);

  // While a job runs, keep its progress current: draw the page again in a few seconds.
  if (jobs?.some((job) => job.state === 'running')) {
    setTimeout(() => {
      if (current(ticket)) overviewPage(main, { ticket }).catch(() => {});
    }, refreshMilliseconds);
  }
}
