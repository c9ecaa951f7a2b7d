import { api, apiURL } from '../api.js';
import { h, replace, append, notice, bytes, when } from '../dom.js';
import { session } from '../app.js';

/** Entries asked for at a time: a folder of 100,000 files opens as fast as one of 500. */
const pageSize = 500;

/** The snapshot browser: one folder at a time (one request each), files downloadable. */
export function snapshotBrowser(backup) {
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Folder' });
  const listing = h('div', { id: 'browser-listing' });
  // Chosen paths, kept across folders, for "Restore chosen…".
  const chosen = new Set();
  const chosenCount = h('span', { class: 'muted small', id: 'chosen-count' });
  const restoreChosen = h('button', { type: 'button', class: 'danger', id: 'restore-chosen', onclick: () => restoreFilesDialog(backup, [...chosen]) }, 'Restore chosen…');
  const showChosen = () => {
    chosenCount.textContent = chosen.size ? chosen.size + ' chosen' : 'Tick files or folders to restore them to another place.';
    restoreChosen.disabled = chosen.size === 0;
  };
  showChosen();
  const section = h('section', { class: 'panel', id: 'snapshot-browser' },
    h('h2', {}, 'Files in this backup'), crumbs, h('div', { class: 'actions' }, restoreChosen, chosenCount), listing);

  /** The rows of `entries` of the folder at `path` ('' is the top). */
  function rows(path, entries) {
    const child = (name) => (path ? path + '/' : '') + name;
    return entries.map((entry) => h('tr', { 'data-id': entry.name },
      h('td', {}, (() => {
        const box = h('input', { type: 'checkbox', 'aria-label': 'Choose ' + child(entry.name), 'data-choose': entry.name, checked: chosen.has(child(entry.name)) });
        box.addEventListener('change', () => {
          if (box.checked) chosen.add(child(entry.name)); else chosen.delete(child(entry.name));
          showChosen();
        });
        return box;
      })()),
      h('td', {}, entry.type === 'dir'
        ? h('button', { type: 'button', class: 'secondary', 'data-folder': entry.name, onclick: () => open(child(entry.name)) }, '📁 ', entry.name)
        : [h('span', { class: 'mono' }, entry.name), entry.type === 'symlink' ? h('span', { class: 'muted small' }, ' → ', entry.link_target ?? '') : '']),
      h('td', {}, entry.type === 'file' ? bytes(entry.size) : entry.type),
      h('td', {}, when(entry.modified_at)),
      h('td', {}, entry.type === 'file'
        ? h('a', { href: apiURL('/backup/' + backup.id + '/file?path=' + encodeURIComponent(child(entry.name))), download: entry.name, 'data-file': entry.name }, 'Download')
        : '')));
  }

  /** GET one page of a folder. */
  function page(path, offset) {
    return api('GET', '/backup/' + backup.id + '/tree?path=' + encodeURIComponent(path) + '&offset=' + offset + '&limit=' + pageSize);
  }

  async function open(path) {
    replace(listing, h('p', { class: 'muted' }, 'Opening…'));
    let folder;
    try {
      folder = await page(path, 0);
    } catch (error) {
      replace(listing, notice('bad', error.message));
      return;
    }
    const names = folder.path ? folder.path.split('/') : [];
    replace(crumbs,
      h('button', { type: 'button', class: 'secondary', onclick: () => open('') }, 'top'),
      names.map((name, i) => ['/', h('button', { type: 'button', class: 'secondary', onclick: () => open(names.slice(0, i + 1).join('/')) }, name)]));
    if (!folder.entries.length) {
      replace(listing, h('p', { class: 'muted' }, 'This folder is empty.'));
      return;
    }
    const body = h('tbody', {}, rows(folder.path, folder.entries));
    const count = h('span', { class: 'muted small', id: 'browser-count' });
    const more = h('button', { type: 'button', class: 'secondary', id: 'browser-more' }, 'Show more');
    let next = folder.next_offset;
    const update = () => {
      count.textContent = body.children.length + ' of ' + folder.total + ' entries';
      more.hidden = next === null || next === undefined;
    };
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        const following = await page(folder.path, next);
        append(body, rows(folder.path, following.entries));
        next = following.next_offset;
        update();
      } catch (error) {
        append(listing, notice('bad', error.message));
      } finally {
        more.disabled = false;
      }
    });
    update();
    replace(listing,
      h('table', { id: 'browser-table' },
        h('thead', {}, h('tr', {}, ['', 'Name', 'Size', 'Modified', ''].map((name) => h('th', { scope: 'col' }, name)))),
        body),
      h('div', { class: 'actions' }, count, more));
  }
  open('');
  return section;
}

/** The signed dialog that restores `paths` of `backup` into a new or empty directory. */
function restoreFilesDialog(backup, paths) {
  const dialog = document.getElementById('dialog');
  const target = h('input', { id: 'files-target', required: true, placeholder: '/srv/restores/ticket-4711', spellcheck: 'false' });
  const password = h('input', { id: 'files-password', type: 'password', autocomplete: 'current-password', required: true });
  const reason = h('textarea', { id: 'files-reason', required: true, maxlength: 1000 });
  const message = h('div', { id: 'files-message', 'aria-live': 'assertive' });
  const sign = h('button', { type: 'submit', class: 'danger', id: 'files-sign' }, 'Sign and restore');
  const form = h('form', { class: 'body' },
    h('h2', { id: 'dialog-title' }, 'Restore ', paths.length, paths.length === 1 ? ' file or folder' : ' files and folders'),
    h('ul', { class: 'small mono' }, paths.slice(0, 10).map((p) => h('li', {}, p)), paths.length > 10 ? h('li', {}, '… and ', paths.length - 10, ' more') : null),
    h('p', {}, 'They are written into a directory on the server that does not exist yet or is empty, outside the live data, the repository and Bunker\'s data directory, under their paths in the backup. Nothing is overwritten and the live data is not touched.'),
    h('label', { for: 'files-target' }, 'Directory on the server (absolute path)', target),
    h('div', { class: 'signature' },
      h('div', {}, h('strong', {}, 'Electronic signature')),
      h('div', { class: 'small' }, 'Signed by: ', session.user.full_name, ' (', session.user.username, ')'),
      h('div', { class: 'small' }, 'Meaning: ', h('strong', {}, 'approved restore'))),
    h('label', { for: 'files-password' }, 'Your password (re-entered to sign)', password),
    h('label', { for: 'files-reason' }, 'Reason', reason),
    message,
    h('div', { class: 'actions' }, sign, h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sign.disabled = true;
    replace(message, notice('', 'Restoring…'));
    try {
      const done = await api('POST', '/backup/' + encodeURIComponent(backup.id) + '/restore-files', {
        paths, target: target.value, password: password.value, reason: reason.value,
      });
      sign.hidden = true;
      replace(message, notice(done.failures ? 'bad' : 'good', h('strong', { id: 'files-outcome' }, 'Restored. '),
        done.files, ' files and ', done.directories, ' folders (', bytes(done.bytes), ') into ', done.target, '.',
        done.failures ? [' ', done.failures, ' entries could not be restored: the audit trail names them.'] : ''));
    } catch (error) {
      const refused = error.code === 'signature_invalid' || error.code === 'signature_required' || error.code === 'account_locked';
      replace(message, notice('bad', h('strong', {}, refused ? 'Signature refused. ' : 'Not restored. '), error.message));
      password.value = '';
    } finally {
      sign.disabled = false;
    }
  });
  replace(dialog, form);
  dialog.showModal();
  target.focus();
}
