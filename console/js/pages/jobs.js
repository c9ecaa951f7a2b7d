import { api } from '../api.js';
import { h, table, when, short, badge, bytes, notice, replace } from '../dom.js';
import { roles } from '../app.js';

/** A job's state as a badge. */
export function stateBadge(state) {
  return badge(state === 'succeeded' ? 'good' : state === 'running' ? 'warn' : state === 'failed' ? 'bad' : '', state);
}

/** A one-line summary of a job's progress counters. */
export function progressText(progress) {
  if (!progress) return '';
  const files = progress.totals_known ? progress.files_done + ' of ' + progress.files_total + ' files' : progress.files_done + ' files';
  const size = progress.totals_known ? bytes(progress.bytes_done) + ' of ' + bytes(progress.bytes_total) : bytes(progress.bytes_done);
  return files + ', ' + size;
}

/** Running and recent jobs, with a cancel button on running ones for administrators. */
export function jobsPanel(jobs) {
  const message = h('div');
  const rows = jobs.map((job) => {
    const cancel = job.state === 'running' && roles.admin()
      ? h('button', {
        type: 'button', class: 'secondary', onclick: async (event) => {
          event.target.disabled = true;
          try {
            await api('DELETE', '/jobs/' + encodeURIComponent(job.id));
            replace(message, notice('', 'Asked job ', short(job.id), ' to stop; it stops at its next safe point.'));
          } catch (error) {
            replace(message, notice('bad', error.message));
          }
        },
      }, 'Cancel')
      : null;
    return [job.kind, stateBadge(job.state), when(job.started_at), job.state === 'running' ? progressText(job.progress) : (job.message ?? ''),
      job.backup_id ? h('a', { href: '#/backups/' + job.backup_id }, short(job.backup_id)) : '', cancel];
  });
  const running = jobs.filter((j) => j.state === 'running').length;
  return h('section', { class: 'panel', id: 'jobs' },
    h('h2', {}, 'Jobs', ' ', running ? badge('warn', running + ' running') : badge('', 'none running')),
    jobs.length ? table(['Kind', 'State', 'Started', 'Progress or result', 'Backup', ''], rows) : h('p', { class: 'muted' }, 'No job has run yet.'),
    message);
}
