// Charts drawn as SVG by the console itself (no library): elements built with createElementNS,
// values as text nodes, like the rest of the page.
const svgNS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, text) {
  const element = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Bars of `items` ({at: RFC 3339, value, title}), oldest left, scaled to the largest; each
 *  bar's title tells its value. `unit` labels the scale, `label` the chart for screen readers. */
export function barChart(items, unit, label) {
  const width = 760, height = 180, left = 50, bottom = 24, top = 10;
  const max = Math.max(...items.map((item) => item.value), 0.001);
  const slot = (width - left) / Math.max(items.length, 1);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label });
  root.append(svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  root.append(svg('text', { x: 0, y: top + 10 }, max.toFixed(max < 10 ? 2 : 0) + ' ' + unit));
  root.append(svg('text', { x: 0, y: height - bottom }, '0'));
  items.forEach((item, i) => {
    const barHeight = Math.max(1, (height - bottom - top) * item.value / max);
    const bar = svg('rect', { class: item.bad ? 'bar bad' : 'bar', x: left + i * slot + slot * 0.15, y: height - bottom - barHeight, width: slot * 0.7, height: barHeight, rx: 2 });
    bar.append(svg('title', {}, item.title));
    root.append(bar);
  });
  if (items.length) {
    root.append(svg('text', { x: left, y: height - 6 }, items[0].at.slice(0, 16).replace('T', ' ')));
    root.append(svg('text', { x: width, y: height - 6, 'text-anchor': 'end' }, items[items.length - 1].at.slice(0, 16).replace('T', ' ')));
  }
  return root;
}

/** The newest backups' sizes (MB). */
export function sizeChart(backups) {
  const items = [...backups].sort((a, b) => a.created_at.localeCompare(b.created_at)).slice(-30)
    .map((b) => ({ at: b.created_at, value: b.size_mb, title: `${b.created_at}: ${b.size_mb} MB (${b.metadata?.backup_type ?? 'backup'})` }));
  return barChart(items, 'MB', 'Size of the newest backups in MB');
}

/** Bytes the backups added to the repository (after deduplication and compression), summed
 *  per day (UTC), in MB: the last 30 days that had a backup. */
export function addedPerDayChart(backups) {
  const days = new Map();
  for (const b of backups) {
    const day = b.created_at.slice(0, 10);
    days.set(day, (days.get(day) ?? 0) + (b.metadata?.stored_bytes ?? 0));
  }
  const items = [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).slice(-30).map(([day, bytes]) => {
    const mb = bytes / 1e6;
    return { at: day, value: mb, title: `${day}: ${mb.toFixed(mb < 10 ? 2 : 0)} MB added` };
  });
  return barChart(items, 'MB', 'Megabytes the backups added to the repository, per day');
}

/** The repository's growth: what the backups still kept added, summed in the order they were
 *  made (MB). Pruned backups are gone from the list, so this is the data the kept ones hold. */
export function growthChart(backups) {
  let total = 0;
  const points = [...backups].sort((a, b) => a.created_at.localeCompare(b.created_at)).map((b) => {
    total += (b.metadata?.stored_bytes ?? 0) / 1e6;
    return { at: b.created_at, value: total, ok: true };
  });
  return lineChart(points, 'MB', 'Repository growth: megabytes added by the kept backups, summed over time');
}

/** How long the newest finished jobs took (seconds), a failed one red. */
export function durationChart(jobs) {
  const items = jobs.filter((job) => job.finished_at).sort((a, b) => a.started_at.localeCompare(b.started_at)).slice(-30).map((job) => {
    const seconds = (new Date(job.finished_at) - new Date(job.started_at)) / 1000;
    return { at: job.started_at, value: seconds, bad: job.state !== 'succeeded', title: `${job.kind} at ${job.started_at}: ${seconds.toFixed(1)} s (${job.state})` };
  });
  return barChart(items, 's', 'How long the newest jobs took, in seconds');
}

/** A line of `points` ({at: RFC 3339, value, ok}) over time, in `unit`; failed points are
 *  drawn red. `label` names the chart for screen readers. */
export function lineChart(points, unit = 's', label = 'Measured RTO of each drill, in seconds') {
  const width = 760, height = 180, left = 50, bottom = 24, top = 10;
  const times = points.map((p) => new Date(p.at).getTime());
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const max = Math.max(...points.map((p) => p.value), 0.001);
  const x = (t) => left + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (width - left - 10);
  const y = (v) => height - bottom - (height - bottom - top) * v / max;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label });
  root.append(svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  root.append(svg('text', { x: 0, y: top + 10 }, max.toFixed(1) + ' ' + unit));
  root.append(svg('text', { x: 0, y: height - bottom }, '0'));
  root.append(svg('polyline', { class: 'line', points: points.map((p, i) => `${x(times[i])},${y(p.value)}`).join(' ') }));
  points.forEach((p, i) => {
    const dot = svg('circle', { class: p.ok ? 'dot' : 'dot bad', cx: x(times[i]), cy: y(p.value), r: 4 });
    dot.append(svg('title', {}, `${p.at}: ${p.value.toFixed(1)} ${unit}${p.ok ? '' : ' (failed)'}`));
    root.append(dot);
  });
  root.append(svg('text', { x: left, y: height - 6 }, points[0].at.slice(0, 16).replace('T', ' ')));
  root.append(svg('text', { x: width, y: height - 6, 'text-anchor': 'end' }, points[points.length - 1].at.slice(0, 16).replace('T', ' ')));
  return root;
}
