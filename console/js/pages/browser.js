import { api, apiURL } from '../api.js';
import { h, replace, append, notice, bytes, when } from '../dom.js';

/** Entries asked for at a time: a folder of 100,000 files opens as fast as one of 500. */
const pageSize = 500;

/** The snapshot browser: one folder at a time (one request each), files downloadable. */
export function snapshotBrowser(backup) {
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Folder' });
  const listing = h('div', { id: 'browser-listing' });
  const section = h('section', { class: 'panel', id: 'snapshot-browser' },
    h('h2', {}, 'Files in this backup'), crumbs, listing);

  /** The rows of `entries` of the folder at `path` ('' is the top). */
  function rows(path, entries) {
    const child = (name) => (path ? path + '/' : '') + name;
    return entries.map((entry) => h('tr', { 'data-id': entry.name },
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
        h('thead', {}, h('tr', {}, ['Name', 'Size', 'Modified', ''].map((name) => h('th', { scope: 'col' }, name)))),
        body),
      h('div', { class: 'actions' }, count, more));
  }
  open('');
  return section;
}
