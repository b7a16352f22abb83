import type { TuneRow } from './tune-table.js';

const WIDTH = 720;
const HEIGHT = 480;
const MARGIN = { left: 70, right: 170, top: 30, bottom: 55 };
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

/** 1, 2 or 5 times a power of ten, at least `raw`: axis ticks a reader can add up. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power;
}

const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Agreement with the unpruned answers against mean time to first token, one line per method through
 * its budgets, the unpruned baseline as a black diamond and the recommendation ringed.
 */
export function tunePlotSvg(rows: readonly TuneRow[], recommended: TuneRow, title: string): string {
  const step = niceStep(Math.max(1, ...rows.map((r) => r.meanFirstTokenMs)) / 5);
  const maxMs = step * Math.ceil((Math.max(1, ...rows.map((r) => r.meanFirstTokenMs)) * 1.05) / step);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (ms: number) => MARGIN.left + (ms / maxMs) * plotW;
  const y = (agreement: number) => MARGIN.top + (1 - agreement) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
      'font-family="sans-serif" font-size="12">',
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="18" font-size="14">${xmlText(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const a = i / 5;
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(a)}" y2="${y(a)}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 8}" y="${y(a) + 4}" text-anchor="end">${(100 * a).toFixed(0)}%</text>`,
    );
  }
  for (let ms = 0; ms <= maxMs + step / 2; ms += step) {
    parts.push(`<text x="${x(ms)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${+ms.toPrecision(6)}</text>`);
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">mean time to first token (ms)</text>`,
    `<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">` +
      'agreement with unpruned answers</text>',
  );
  const methods = [...new Set(rows.filter((r) => r.method !== 'none').map((r) => r.method))];
  methods.forEach((method, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = rows.filter((r) => r.method === method).sort((a, b) => a.meanFirstTokenMs - b.meanFirstTokenMs);
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points
        .map((r) => `${x(r.meanFirstTokenMs).toFixed(1)},${y(r.agreement).toFixed(1)}`)
        .join(' ')}"/>`,
      ...points.map(
        (r) =>
          `<circle cx="${x(r.meanFirstTokenMs).toFixed(1)}" cy="${y(r.agreement).toFixed(1)}" r="4" fill="${colour}">` +
          `<title>${xmlText(`${r.method} @ ${r.budget}`)}</title></circle>`,
      ),
      `<rect x="${WIDTH - MARGIN.right + 15}" y="${MARGIN.top + 18 * i}" width="10" height="10" fill="${colour}"/>`,
      `<text x="${WIDTH - MARGIN.right + 30}" y="${MARGIN.top + 18 * i + 9}">${xmlText(method)}</text>`,
    );
  });
  const base = rows.find((r) => r.method === 'none');
  if (base) {
    const bx = x(base.meanFirstTokenMs);
    const by = y(base.agreement);
    parts.push(
      `<path d="M${bx} ${by - 6} L${bx + 6} ${by} L${bx} ${by + 6} L${bx - 6} ${by} Z" fill="black"/>`,
      `<text x="${bx - 8}" y="${by - 8}" text-anchor="end">unpruned</text>`,
    );
  }
  parts.push(
    `<circle cx="${x(recommended.meanFirstTokenMs)}" cy="${y(recommended.agreement)}" r="9" fill="none" ` +
      'stroke="black" stroke-width="2"/>',
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
