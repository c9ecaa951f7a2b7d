import { api, apiURL } from '../api.js';
import { h, replace, notice, table, bytes, when } from '../dom.js';

/** The snapshot browser: one folder at a time (one request each), files downloadable. */
export function snapshotBrowser(backup) {
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Folder' });
  const listing = h('div', { id: 'browser-listing' });
  const section = h('section', { class: 'panel', id: 'snapshot-browser' },
    h('h2', {}, 'Files in this backup'), crumbs, listing);

  async function open(path) {
    replace(listing, h('p', { class: 'muted' }, 'Opening…'));
    let folder;
    try {
      folder = await api('GET', '/backup/' + backup.id + '/tree?path=' + encodeURIComponent(path));
    } catch (error) {
      replace(listing, notice('bad', error.message));
      return;
    }
    const names = folder.path ? folder.path.split('/') : [];
    replace(crumbs,
      h('button', { type: 'button', class: 'secondary', onclick: () => open('') }, 'top'),
      names.map((name, i) => ['/', h('button', { type: 'button', class: 'secondary', onclick: () => open(names.slice(0, i + 1).join('/')) }, name)]));
    const child = (name) => (folder.path ? folder.path + '/' : '') + name;
    replace(listing, folder.entries.length
      ? table(['Name', 'Size', 'Modified', ''], folder.entries.map((entry) => ({
        id: entry.name,
        cells: [
          entry.type === 'dir'
            ? h('button', { type: 'button', class: 'secondary', 'data-folder': entry.name, onclick: () => open(child(entry.name)) }, '📁 ', entry.name)
            : [h('span', { class: 'mono' }, entry.name), entry.type === 'symlink' ? h('span', { class: 'muted small' }, ' → ', entry.link_target ?? '') : ''],
          entry.type === 'file' ? bytes(entry.size) : entry.type,
          when(entry.modified_at),
          entry.type === 'file'
            ? h('a', { href: apiURL('/backup/' + backup.id + '/file?path=' + encodeURIComponent(child(entry.name))), download: entry.name, 'data-file': entry.name }, 'Download')
            : '',
        ],
      })), { id: 'browser-table' })
      : h('p', { class: 'muted' }, 'This folder is empty.'));
  }
  open('');
  return section;
}
