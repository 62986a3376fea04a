// The drill's evidence report as one self-contained HTML page (no scripts, no external assets):
// verdicts, RTO/RPO against targets as an SVG chart, the timeline, approvals and sign-off,
// failures and compensations. Pure code: the worker stores it, the CLI renders it the same way.
import { type DrillReport, failureCause, notMeasured, type TierResult } from './drill.ts';

const esc = (s: unknown) =>
  String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

const secs = (n: number | undefined) =>
  n === undefined
    ? '—'
    : n < 120
      ? `${n.toFixed(1)} s`
      : n < 7200
        ? `${(n / 60).toFixed(1)} min`
        : `${(n / 3600).toFixed(1)} h`;

/** Horizontal bars per tier: achieved (solid) against target (outline), one row for RTO, one for RPO. */
function chart(tiers: TierResult[]): string {
  const rows = tiers.flatMap((t) => [
    { label: `${t.tier} RTO`, value: t.rtoSeconds, target: t.rtoTargetSeconds, met: t.rtoMet },
    { label: `${t.tier} RPO`, value: t.rpoSeconds, target: t.rpoTargetSeconds, met: t.rpoMet },
  ]);
  const rowH = 34;
  const labelW = 150;
  const barW = 520;
  const h = rows.length * rowH + 30;
  const bars = rows
    .map((r, i) => {
      const scale = Math.max(r.target, r.value ?? 0, 1);
      const y = 10 + i * rowH;
      const targetW = (r.target / scale) * barW;
      const valueW = ((r.value ?? 0) / scale) * barW;
      const colour = r.met ? '#2e7d32' : '#c62828';
      return [
        `<text x="0" y="${y + 17}" class="lbl">${esc(r.label)}</text>`,
        `<rect x="${labelW}" y="${y + 2}" width="${targetW.toFixed(1)}" height="20" class="target"/>`,
        `<rect x="${labelW}" y="${y + 6}" width="${Math.max(valueW, 1.5).toFixed(1)}" height="12" fill="${colour}" data-metric="${esc(r.label)}" data-value="${r.value ?? ''}" data-target="${r.target}"/>`,
        `<text x="${labelW + barW + 8}" y="${y + 17}" class="val">${esc(`${secs(r.value)} / target ${secs(r.target)} ${r.met ? '✔' : '✘'}`)}</text>`,
      ].join('');
    })
    .join('\n');
  return `<svg role="img" aria-label="RTO and RPO against targets" width="${labelW + barW + 230}" height="${h}" xmlns="http://www.w3.org/2000/svg">
<style>.lbl,.val{font:13px sans-serif;fill:#222}.target{fill:none;stroke:#555;stroke-dasharray:4 3}</style>
${bars}
<text x="${labelW}" y="${h - 4}" class="val">solid: achieved (green met, red missed) · dashed: target</text></svg>`;
}

function timeline(r: DrillReport): string {
  const t0 = Date.parse(r.startedAt);
  const end = Math.max(Date.parse(r.endedAt), t0 + 1);
  const span = end - t0;
  const w = 520;
  const rows = r.timeline
    .map((s) => {
      const a = s.startedAt ? Date.parse(s.startedAt) : undefined;
      const b = s.endedAt ? Date.parse(s.endedAt) : a;
      const bar =
        a === undefined
          ? ''
          : `<svg width="${w}" height="12"><rect x="${(((a - t0) / span) * w).toFixed(1)}" y="1" width="${Math.max((((b ?? a) - a) / span) * w, 2).toFixed(1)}" height="10" fill="${s.state === 'failed' ? '#c62828' : s.state === 'done' ? '#1565c0' : '#9e9e9e'}"/></svg>`;
      return `<tr class="step-${esc(s.state)}"><td>${esc(s.step)}</td><td>${esc(s.state)}</td><td class="num">${s.seconds === undefined ? '' : esc(s.seconds.toFixed(1))}</td><td>${bar}</td><td>${esc(s.detail ?? '')}</td></tr>`;
    })
    .join('\n');
  return `<table><thead><tr><th>step</th><th>state</th><th>seconds</th><th>when</th><th>detail</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** "with key SHA256:…" (verified by the worker), or UNSIGNED in red. */
function signer(d: { unsigned?: boolean; fingerprint?: string }): string {
  if (d.unsigned) return '<span class="bad">UNSIGNED</span>';
  return d.fingerprint ? `with key <code>${esc(d.fingerprint)}</code>` : '';
}

export function renderDrillHtml(r: DrillReport): string {
  const verdictRows = r.verdicts
    .map(
      (v) =>
        `<tr><td>${esc(v.criterion)}</td><td class="${v.ok ? 'ok' : 'bad'}">${v.ok ? 'PASS' : 'FAIL'}</td><td>${esc(v.detail)}</td></tr>`,
    )
    .join('\n');
  // A figure that could not be measured says why, never '?' or a bare dash.
  const figure = (n: number | undefined, which: 'rto' | 'rpo') =>
    n === undefined ? `<span class="bad">${esc(notMeasured(r, which))}</span>` : secs(n);
  const cause = r.cause ?? failureCause(r);
  const why = cause
    ? `<div id="cause" style="border:2px solid #c62828;padding:8px 12px;margin:12px 0"><b>Why it ${r.outcome === 'cancelled' ? 'stopped' : 'failed'}:</b> <span id="cause-check">${esc(cause.check)}</span>: ${esc(cause.detail)}<br><b>What to do:</b> <span id="cause-action">${esc(cause.action)}</span></div>\n`
    : '';
  const tierRows = r.tiers
    .map(
      (t) =>
        `<tr><td>${esc(t.tier)}</td><td>${esc(t.namespaces.join(', '))}</td><td class="num">${figure(t.rtoSeconds, 'rto')}</td><td class="num">${secs(t.rtoTargetSeconds)}</td><td class="${t.rtoMet ? 'ok' : 'bad'}">${t.rtoMet ? 'met' : 'missed'}</td><td class="num">${figure(t.rpoSeconds, 'rpo')}</td><td class="num">${secs(t.rpoTargetSeconds)}</td><td class="${t.rpoMet ? 'ok' : 'bad'}">${t.rpoMet ? 'met' : 'missed'}</td></tr>`,
    )
    .join('\n');
  const approvals = r.approvals
    .map(
      (d) =>
        `<li>${esc(d.decision ?? (d.approve ? 'approve' : 'reject'))} by <b>${esc(d.by || '(unknown)')}</b> ${signer(d)} at ${esc(d.at)}${d.evidence ? ` over evidence <code>${esc(d.evidence)}</code>` : ''}${d.reason ? ` — “${esc(d.reason)}”` : ''}: ${d.accepted ? 'accepted' : `<span class="bad">refused</span> (${esc(d.why)})`}</li>`,
    )
    .join('');
  const unsigned =
    !!r.gate?.unsignedAllowed || r.approvals.some((d) => d.accepted && d.unsigned) || !!r.signOff?.unsigned;
  const requester = r.gate?.requester
    ? ` <span class="ok">(signed request, key <code>${esc(r.gate.requester.fingerprint)}</code>)</span>`
    : r.gate
      ? ` <span class="bad">(not proven: ${esc(r.gate.requesterUnproven ?? 'unsigned')})</span>`
      : '';
  const list = (items: string[]) =>
    items.length ? `<ul>${items.map((i) => `<li>${esc(i)}</li>`).join('')}</ul>` : '<p>none</p>';
  const checks = r.checks
    .map((c) => `<li class="${c.ok ? 'ok' : 'bad'}">${c.ok ? 'ok' : 'FAIL'} ${esc(c.check)}: ${esc(c.detail)}</li>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DR drill ${esc(r.plan)}: ${esc(r.outcome.toUpperCase())}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{margin:0 0 4px}h2{margin-top:28px;border-bottom:1px solid #ddd}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold}
.passed{background:#2e7d32}.failed,.cancelled{background:#c62828}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
.num{text-align:right;white-space:nowrap}.ok{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{color:#666}
</style></head><body>
${unsigned ? '<p id="unsigned" class="bad" style="border:2px solid #c62828;padding:8px">UNSIGNED APPROVALS WERE ALLOWED (approvals.unsigned: allow): the decisions below are names people typed, not proven identities.</p>\n' : ''}<h1>DR drill <span id="plan">${esc(r.plan)}</span> <span id="outcome" class="badge ${esc(r.outcome)}">${esc(r.outcome.toUpperCase())}</span></h1>
${why}<dl>
<dt>workflow</dt><dd id="workflow">${esc(r.workflowId)} (run ${esc(r.runId)})</dd>
<dt>sites</dt><dd>${esc(r.from)} → ${esc(r.to)} (drill record ${esc(r.record)})</dd>
<dt>namespaces</dt><dd>${esc(r.namespaces.join(', '))}</dd>
<dt>requested by</dt><dd>${esc(r.requestedBy)}${requester}${r.reason ? ` — ${esc(r.reason)}` : ''}</dd>
<dt>ran</dt><dd>${esc(r.startedAt)} → ${esc(r.endedAt)}</dd>
<dt>backup</dt><dd>${r.backup ? `${esc(r.backup.name)}, completed ${esc(r.backup.completedAt)}` : 'none'}</dd>
<dt>approval wait</dt><dd>${secs(r.approvalWaitSeconds)} (not counted in the RTO)</dd>
<dt>sign-off</dt><dd id="signoff">${r.signOff ? `${esc(r.signOff.by)} ${signer(r.signOff)} at ${esc(r.signOff.at)}${r.signOff.evidence ? ` over report <code>${esc(r.signOff.evidence)}</code>` : ''}${r.signOff.comment ? ` — “${esc(r.signOff.comment)}”` : ''}` : 'not signed off'}</dd>
${r.location ? `<dt>stored at</dt><dd>s3://${esc(r.location.bucket)}/${esc(r.location.json)}</dd>` : ''}
</dl>
<h2>Verdicts</h2>
<table id="verdicts"><thead><tr><th>criterion</th><th>verdict</th><th>detail</th></tr></thead><tbody>${verdictRows}</tbody></table>
<h2>RTO / RPO against targets</h2>
${chart(r.tiers)}
<table id="tiers"><thead><tr><th>tier</th><th>namespaces</th><th>RTO</th><th>target</th><th></th><th>RPO</th><th>target</th><th></th></tr></thead><tbody>${tierRows}</tbody></table>
<h2>Timeline</h2>
${timeline(r)}
<h2>Approvals</h2>
${r.gate ? `<p>Evidence at the gate: sha256 <code>${esc(r.gate.evidenceDigest)}</code>; ${r.gate.approvalsNeeded} approval(s) needed.</p>` : ''}
${approvals ? `<ul id="approvals">${approvals}</ul>` : '<p>none</p>'}
<h2>Checks at the DR site</h2>
${checks ? `<ul>${checks}</ul>` : '<p>none</p>'}
${r.etcd ? `<h2>etcd restore drill</h2><p>${esc(r.etcd.cluster)}: ${esc(r.etcd.outcome)} in ${secs(r.etcd.seconds)} from ${esc(r.etcd.snapshot ?? 'no snapshot (none was found)')} (${esc(r.etcd.workflowId)})${r.etcd.detail ? ` — ${esc(r.etcd.detail)}` : ''}</p>` : ''}
<h2>Failures</h2>
${list(r.failures)}
<h2>Compensations (cleanup)</h2>
${list(r.compensations.map((c) => `${c.name}: ${c.state}${c.detail ? ` (${c.detail})` : ''}`))}
<h2>Warnings</h2>
${list(r.warnings)}
<footer><p>drctl drill report ${esc(r.kind)}</p></footer>
</body></html>
`;
}
