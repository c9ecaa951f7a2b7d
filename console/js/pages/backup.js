import { api, apiURL } from '../api.js';
import { h, replace, notice, bytes, when, short, badge } from '../dom.js';
import { roles, current, session } from '../app.js';
import { snapshotBrowser } from './browser.js';
import { retentionUntil } from './backups.js';

/** One backup: what it holds, who made it and why; verify, download and restore. */
export async function backupPage(main, { ticket, params: [id] }) {
  const backup = await api('GET', '/backup/' + encodeURIComponent(id));
  if (!current(ticket)) return;
  const meta = backup.metadata ?? {};
  const result = h('div', { id: 'backup-action-result', 'aria-live': 'polite' });

  const actions = roles.admin()
    ? h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'verify-button', onclick: (e) => verify(backup, e.target, result) }, 'Verify'),
      h('button', { type: 'button', class: 'secondary', id: 'drill-button', onclick: (e) => drill(backup, e.target, result) }, 'Run restore drill'),
      h('a', { class: 'button secondary', id: 'download-zip', href: apiURL('/backup/' + backup.id + '/download'), download: backup.filename }, 'Download ZIP'),
      h('button', { type: 'button', class: 'danger', id: 'restore-button', onclick: () => restoreDialog(backup, result) }, 'Restore…'))
    : h('p', { class: 'muted small', id: 'read-only-note' }, 'Your role (', session.user.role, ') can read backups; only a SYSTEM_ADMIN verifies, downloads or restores them.');

  replace(main,
    h('p', {}, h('a', { href: '#/backups' }, '← All backups')),
    h('h1', {}, 'Backup ', h('span', { class: 'mono' }, short(backup.id))),
    h('div', { class: 'panel' },
      h('dl', { class: 'facts', id: 'backup-facts' },
        h('dt', {}, 'Id'), h('dd', { class: 'mono' }, backup.id),
        h('dt', {}, 'Created'), h('dd', {}, when(backup.created_at)),
        h('dt', {}, 'Type'), h('dd', {}, meta.backup_type ?? '—'),
        h('dt', {}, 'Sources'), h('dd', {}, (meta.sources ?? []).join(', ') || '—'),
        h('dt', {}, 'Size'), h('dd', {}, bytes(meta.size_bytes), ' in ', meta.file_count, ' files; ', bytes(meta.stored_bytes), ' added to the repository'),
        h('dt', {}, 'Tags'), h('dd', {}, (meta.tags ?? []).length ? meta.tags.map((t) => [badge(t === 'safety' ? 'warn' : '', t), ' ']) : '—'),
        h('dt', {}, 'Legal hold'), h('dd', {}, backup.held ? badge('bad', 'held: retention keeps it') : 'none'),
        h('dt', {}, 'Retention until'), h('dd', { id: 'retention-until', title: 'The earliest time the retention policy could remove this backup' }, retentionUntil(backup)),
        h('dt', {}, 'Made by'), h('dd', {}, backup.created_by_name, backup.created_by_email ? ' <' + backup.created_by_email + '>' : ''),
        h('dt', {}, 'Why'), h('dd', {}, backup.description ?? '—'),
        h('dt', {}, 'Host'), h('dd', {}, meta.hostname ?? '—'),
        h('dt', {}, 'ZIP SHA-256'), backup.checksum
          ? h('dd', { class: 'mono' }, backup.checksum)
          : h('dd', {}, 'known after the first download (sha256sum of the ZIP)')),
      actions, result),
    roles.admin() ? snapshotBrowser(backup) : null);
}

async function verify(backup, button, result) {
  button.disabled = true;
  replace(result, notice('', 'Verifying: reading and authenticating every pack this backup needs…'));
  try {
    const answer = await api('POST', '/backup/' + encodeURIComponent(backup.id) + '/verify');
    replace(result, notice(answer.valid ? 'good' : 'bad', h('strong', { id: 'verify-outcome' }, answer.valid ? 'Verified. ' : 'Damaged. '), answer.message));
  } catch (error) {
    replace(result, notice('bad', 'Verify failed: ', error.message));
  } finally {
    button.disabled = false;
  }
}

async function drill(backup, button, result) {
  button.disabled = true;
  replace(result, notice('', 'Drilling: restoring into a scratch place (the live data is not touched), checking, timing…'));
  try {
    const report = await api('POST', '/backup/' + encodeURIComponent(backup.id) + '/drill');
    const checks = [report.data_check, ...report.sources.flatMap((s) => s.checks.map((c) => ({ ...c, name: s.name + ': ' + c.name })))];
    replace(result, notice(report.passed ? 'good' : 'bad',
      h('strong', { id: 'drill-outcome' }, report.passed ? 'Drill passed. ' : 'Drill failed. '),
      'Measured RTO: ', report.duration_seconds.toFixed(1), ' s. ',
      h('ul', { class: 'small' }, checks.map((c) => h('li', {}, c.passed ? '✓ ' : '✗ ', c.name, c.detail ? ' — ' + c.detail : '')))));
  } catch (error) {
    replace(result, notice('bad', 'The drill did not run: ', error.message));
  } finally {
    button.disabled = false;
  }
}

/** The electronic-signature dialog: what the restore does, then password and reason. */
function restoreDialog(backup, result) {
  const dialog = document.getElementById('dialog');
  const meta = backup.metadata ?? {};
  const password = h('input', { id: 'restore-password', type: 'password', autocomplete: 'current-password', required: true });
  const reason = h('textarea', { id: 'restore-reason', required: true, maxlength: 1000, placeholder: 'Ticket 4711: the study folder was deleted by mistake' });
  const safety = h('input', { id: 'restore-safety', type: 'checkbox', checked: true });
  const message = h('div', { id: 'restore-message', 'aria-live': 'assertive' });
  const sign = h('button', { type: 'submit', class: 'danger', id: 'restore-sign' }, 'Sign and restore');
  const close = h('button', { type: 'button', class: 'secondary', id: 'restore-cancel', onclick: () => dialog.close() }, 'Cancel');
  const form = h('form', { class: 'body', method: 'dialog' },
    h('h2', { id: 'dialog-title' }, 'Restore backup ', h('span', { class: 'mono' }, short(backup.id))),
    h('p', {}, 'This puts back the data of ', h('strong', {}, (meta.sources ?? []).join(', ') || 'every source'),
      ' as it was on ', h('strong', {}, when(backup.created_at)), '. What those sources hold now is overwritten; ',
      'paths the backup does not manage stay as they are.'),
    h('label', { class: 'check', for: 'restore-safety' }, safety,
      'First take a safety backup of the current state (recommended: it lets this restore be undone).'),
    h('div', { class: 'signature' },
      h('div', {}, h('strong', {}, 'Electronic signature')),
      h('div', { class: 'small' }, 'Signed by: ', session.user.full_name, ' (', session.user.username, ')'),
      h('div', { class: 'small' }, 'Meaning: ', h('strong', {}, 'approved restore')),
      h('div', { class: 'small muted' }, 'Time: recorded by the server when you sign. The signature and your reason go into the audit trail.')),
    h('label', { for: 'restore-password' }, 'Your password (re-entered to sign)', password),
    h('label', { for: 'restore-reason' }, 'Reason', reason),
    message,
    h('div', { class: 'actions' }, sign, close));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sign.disabled = true;
    replace(message, notice('', 'Restoring… the live data is replaced only once the restored copy has passed its checks.'));
    try {
      const done = await api('POST', '/restore/' + encodeURIComponent(backup.id), {
        password: password.value, reason: reason.value, create_safety_backup: safety.checked,
      });
      dialog.close();
      replace(result, notice('good', h('strong', { id: 'restore-outcome' }, 'Restored. '), 'Backup ', short(done.backup_id), ' was restored at ', when(done.restored_at), '.',
        done.safety_backup_id ? [' The state before it is in safety backup ', h('a', { href: '#/backups/' + done.safety_backup_id }, short(done.safety_backup_id)), '.'] : ''));
    } catch (error) {
      const refused = error.code === 'signature_invalid' || error.code === 'signature_required' || error.code === 'account_locked';
      replace(message, notice('bad', h('strong', { id: 'restore-refused' }, refused ? 'Signature refused. ' : 'Restore failed. '), error.message,
        refused ? ' Nothing was restored; the refusal is recorded in the audit trail.' : ''));
      password.value = '';
      password.focus();
    } finally {
      sign.disabled = false;
    }
  });
  replace(dialog, form);
  dialog.showModal();
  password.focus();
}
