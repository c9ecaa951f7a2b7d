import { api } from '../api.js';
import { h, replace, notice, short } from '../dom.js';
import { current } from '../app.js';
import { progressText, stateBadge } from './jobs.js';

/** How often a running job's progress is asked for. */
const pollMilliseconds = 500;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a backup (as a job) and follows its progress until it ends; it can be cancelled. */
export async function backupNowPage(main, { ticket }) {
  const type = h('select', { id: 'backup-type', name: 'backup_type' },
    h('option', { value: 'full' }, 'full: every source'),
    h('option', { value: 'database' }, 'database: the databases only'),
    h('option', { value: 'files' }, 'files: the file trees only'));
  const description = h('input', { id: 'backup-description', name: 'description', maxlength: 1000, placeholder: 'before the 4.2 upgrade' });
  const start = h('button', { type: 'submit', id: 'backup-start' }, 'Start backup');
  const status = h('div', { id: 'backup-status', 'aria-live': 'polite' });
  const form = h('form', { class: 'stack' },
    h('label', { for: 'backup-type' }, 'What to back up', type),
    h('label', { for: 'backup-description' }, 'Description (why)', description),
    start);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    start.disabled = true;
    try {
      const accepted = await api('POST', '/backup', { backup_type: type.value, description: description.value || undefined, async: true });
      await follow(accepted.job_id, status, ticket);
    } catch (error) {
      replace(status, notice('bad', 'The backup did not start: ', error.message));
    } finally {
      start.disabled = false;
    }
  });

  replace(main, h('h1', {}, 'Back up now'),
    h('div', { class: 'panel' },
      h('p', { class: 'muted' }, 'A backup runs as a job: one writer at a time per repository. It is audited and notified like a scheduled one.'),
      form, status));
}

/** Draws job `id`'s progress in `status` until it ends (or the user leaves the page). */
async function follow(id, status, ticket) {
  const bar = h('progress', { id: 'backup-progress', max: 1, 'aria-label': 'Backup progress' });
  const text = h('div', { class: 'small', id: 'backup-progress-text' }, 'Starting…');
  const state = h('span', { id: 'job-state' }, stateBadge('running'));
  const cancel = h('button', { type: 'button', class: 'danger', id: 'backup-cancel' }, 'Cancel');
  const outcome = h('div', { id: 'backup-outcome' });
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api('DELETE', '/jobs/' + encodeURIComponent(id));
      text.textContent = 'Cancelling: the job stops at its next safe point…';
    } catch (error) {
      replace(outcome, notice('bad', error.message));
    }
  });
  replace(status, h('div', { class: 'panel' },
    h('h2', {}, 'Job ', h('span', { class: 'mono' }, short(id)), ' ', state),
    bar, text, h('div', { class: 'actions' }, cancel), outcome));

  while (current(ticket)) {
    const job = await api('GET', '/jobs/' + encodeURIComponent(id));
    replace(state, stateBadge(job.state));
    const p = job.progress;
    if (p && p.totals_known && p.bytes_total > 0) {
      bar.max = p.bytes_total;
      bar.value = p.bytes_done;
    } else if (job.state !== 'running') {
      bar.max = 1;
      bar.value = job.state === 'succeeded' ? 1 : 0;
    }
    if (job.state === 'running') {
      text.textContent = progressText(p) + (p?.current ? ' · ' + p.current : '');
    } else {
      cancel.hidden = true;
      if (job.state === 'succeeded') {
        bar.max = 1;
        bar.value = 1;
        text.textContent = 'Done. ' + progressText(p);
        replace(outcome, notice('good', 'Backup done: ',
          job.backup_id ? h('a', { href: '#/backups/' + job.backup_id, id: 'backup-result-link' }, 'backup ', short(job.backup_id)) : 'no backup id recorded', '.'));
      } else {
        text.textContent = 'Ended: ' + job.state;
        replace(outcome, notice('bad', 'The backup did not complete: ', job.message ?? job.state));
      }
      return;
    }
    await sleep(pollMilliseconds);
  }
}
