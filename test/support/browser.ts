// A real browser for tests: Debian's Chromium driven by playwright-core (lab/install.sh installs it;
// `npx playwright install` cannot download on these machines), and the Temporal Web UI driven the
// way an operator drives it. Checked against the Web UI the lab's dev server embeds (2.54.1).
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS_DIR = fileURLToPath(new URL('../artifacts/', import.meta.url));

/** No GPU, sandbox or profile in these machines, and nothing phoning home while a test runs. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: the browser tests need Debian's chromium package (bash lab/install.sh installs it, or apt-get install chromium)`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Saves a full-page screenshot as test/artifacts/<name>.png (gitignored); returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = `${ARTIFACTS_DIR}${name.replace(/[^\w.-]+/g, '_')}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

export interface WebUiSignal {
  /** Web UI base URL, e.g. the config's temporal.webUi (http://127.0.0.1:8233). */
  webUi: string;
  namespace: string;
  workflowId: string;
  signal: string;
  /** Sent as the signal's single JSON argument; undefined sends none. */
  input?: unknown;
  /** For each wait along the way (page load, dialog, confirmation). Default 30 s. */
  timeoutMs?: number;
}

/**
 * Sends a signal through the Web UI as a person would: the workflow's page (its latest run),
 * More Actions → Send a Signal, the signal picked from the list (typed under "Custom" when the
 * workflow does not list it), the JSON input, Submit. Resolves once the UI confirms ("Workflow
 * signaled.") and the signal shows in the run's Event History; rejects with what the page showed.
 */
export async function signalFromWebUi(page: Page, opts: WebUiSignal): Promise<void> {
  const { signal, workflowId } = opts;
  const timeout = opts.timeoutMs ?? 30_000;
  await openWorkflow(page, opts, timeout);
  const history = await signalEvents(page, signal, timeout);
  const before = await history.count();

  await page.getByRole('button', { name: 'More Actions' }).click({ timeout });
  const sendSignal = page.getByRole('menuitem', { name: 'Send a Signal' });
  if (!(await appears(sendSignal, Math.min(timeout, 5_000)))) {
    throw new Error(
      `Web UI: no "Send a Signal" action for ${workflowId} (status ${await runStatus(page)}); only a running workflow takes signals`,
    );
  }
  await sendSignal.click({ timeout });
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  await dialog.waitFor({ timeout });

  await dialog.getByRole('button', { name: 'Select a signal' }).click({ timeout });
  // The list comes from the workflow's metadata query: the handlers registered right now.
  const listed = dialog.getByRole('option').filter({ has: page.getByText(signal, { exact: true }) });
  const custom = dialog.getByRole('option').filter({ has: page.getByText('Custom', { exact: true }) });
  await custom.waitFor({ timeout });
  if (await appears(listed.first(), 3_000)) {
    await listed.first().click();
  } else {
    await custom.click();
    await dialog.getByRole('textbox', { name: 'Signal name' }).fill(signal);
  }

  if (opts.input !== undefined) {
    // The Data field is a code editor that pretty-prints its JSON when it loses focus, moving the
    // buttons under the pointer: type it pretty already, and click away before Submit.
    await dialog.getByRole('textbox', { name: 'Data' }).fill(JSON.stringify(opts.input, null, 2));
    await dialog.getByRole('heading', { name: 'Send a Signal' }).click();
  }
  const submit = dialog.getByRole('button', { name: 'Submit' });
  if (!(await submit.isEnabled()))
    throw new Error(`Web UI: Submit stays disabled for signal ${signal} to ${workflowId}: ${await dialogText(dialog)}`);
  await submit.click({ timeout });

  const confirmed = page.getByText('Workflow signaled', { exact: false });
  if (!(await appears(confirmed.first(), timeout)))
    throw new Error(
      `Web UI: no "Workflow signaled" confirmation for ${signal} to ${workflowId} within ${timeout} ms; the page shows: ${await dialogText(dialog)}`,
    );

  // The confirmation only says the server took the request: see it in the run's history too.
  const deadline = Date.now() + timeout;
  for (;;) {
    await page.reload();
    const events = await signalEvents(page, signal, timeout);
    if ((await events.count()) > before) return;
    if (Date.now() > deadline)
      throw new Error(
        `Web UI: the Event History of ${workflowId} shows no new ${signal} signal after ${timeout} ms (${before} before sending)`,
      );
    await page.waitForTimeout(500);
  }
}

/** The workflow's page, latest run: the UI resolves an ID-only URL; else through the list's search. */
async function openWorkflow(page: Page, { webUi, namespace, workflowId }: WebUiSignal, timeout: number): Promise<void> {
  const base = `${webUi.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows`;
  // The title reads "Copy <id>" to assistive tech: its copy button's label comes first.
  const title = page.getByRole('heading', { level: 1, name: new RegExp(`(^|\\s)${escapeRegExp(workflowId)}$`) });
  await page.goto(`${base}/${encodeURIComponent(workflowId)}`);
  if (await appears(title, timeout)) return;
  await page.goto(`${base}?query=${encodeURIComponent(`WorkflowId="${workflowId}"`)}`);
  await page.getByRole('link', { name: workflowId, exact: true }).first().click({ timeout });
  await title.waitFor({ timeout });
}

/** Switches to the run's Event History tab; its "Workflow Execution Signaled" rows for this signal. */
async function signalEvents(page: Page, signal: string, timeout: number): Promise<Locator> {
  await page.getByRole('tab', { name: /^Event History/ }).click({ timeout });
  // A header row, then the events: wait for the first event before counting.
  await page.getByRole('table').getByRole('row').nth(1).waitFor({ timeout });
  return page
    .getByRole('row', { name: /Workflow Execution Signaled/ })
    .filter({ has: page.getByRole('cell', { name: `Signal Name ${signal}`, exact: true }) });
}

const appears = (l: Locator, timeout: number): Promise<boolean> =>
  l.waitFor({ timeout }).then(
    () => true,
    () => false,
  );

/** The run's status badge (RUNNING, COMPLETED, FAILED, ...). */
async function runStatus(page: Page): Promise<string> {
  return page
    .getByRole('status')
    .first()
    .innerText({ timeout: 1_000 })
    .then(
      (s) => s.trim(),
      () => 'unknown',
    );
}

async function dialogText(dialog: Locator): Promise<string> {
  if (!(await dialog.isVisible())) return '(dialog closed)';
  return (await dialog.innerText()).replace(/\s+/g, ' ').trim();
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
