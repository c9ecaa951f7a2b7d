// Building the page: every value goes in as text (textContent or an attribute), never as HTML,
// so nothing from the server or a user can become markup or script.

/** An element `tag` with `attrs` (`on…` functions become listeners) and `children`. */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'class') element.className = value;
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

/** Appends `children` (nodes, strings, numbers, arrays of them; null and false are skipped). */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces everything in `element` with `children`. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** A notice box: `kind` is '', 'good' or 'bad'. */
export function notice(kind, ...children) {
  return h('div', { class: 'notice ' + kind, role: kind === 'bad' ? 'alert' : 'status' }, ...children);
}

/** A table with `headers` and `rows` (arrays of cells, or {cells, class} objects). */
export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map((row) => {
      const cells = Array.isArray(row) ? row : row.cells;
      return h('tr', { class: row.class, 'data-id': row.id }, cells.map((cell) => h('td', {}, cell)));
    })));
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function bytes(count) {
  if (count === null || count === undefined) return '—';
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)) + ' ' + units[unit];
}

/** An RFC 3339 time as local date and time, to the minute. */
export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** How long ago `iso` was, in hours; null without a time. */
export function hoursSince(iso) {
  if (!iso) return null;
  return (Date.now() - new Date(iso).getTime()) / 3_600_000;
}

/** 0.3 → "18 min", 30 → "1 d 6 h". */
export function age(hours) {
  if (hours === null || hours === undefined || !Number.isFinite(hours)) return 'never';
  if (hours < 1) return Math.max(0, Math.round(hours * 60)) + ' min';
  if (hours < 48) return Math.floor(hours) + ' h ' + Math.round((hours % 1) * 60) + ' min';
  return Math.floor(hours / 24) + ' d ' + Math.round(hours % 24) + ' h';
}

/** The first 8 hex digits of an id. */
export function short(id) {
  return id ? String(id).slice(0, 8) : '—';
}

/** A badge: 'good', 'bad', 'warn' or ''. */
export function badge(kind, text) {
  return h('span', { class: 'badge ' + kind }, text);
}
