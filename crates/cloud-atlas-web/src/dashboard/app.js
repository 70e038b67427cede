// cloud-atlas dashboard: no framework, no build step. Reads /v1 with the session cookie,
// follows /v1/events (resuming from the list's event id, so nothing is missed), and sends
// the CSRF token with every mutation.
'use strict';

const BASE = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
const $ = (id) => document.getElementById(id);
const state = {
  csrf: null,
  allowDestructive: false,
  rows: new Map(),      // session id -> { s: SessionView, tr, ended, spent, running }
  skew: 0,              // local clock minus server clock, ms
  es: null,
  gpus: [],
  spendTimer: null,
};

// ---------- helpers
function fmtMoney(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return '$' + Number(v).toFixed(digits === undefined ? 2 : digits);
}
function fmtDur(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  const neg = ms < 0; ms = Math.abs(ms);
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24,
    m = Math.floor(s / 60) % 60, sec = s % 60;
  let out = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${String(sec).padStart(2, '0')}s` : `${sec}s`;
  return neg ? '-' + out : out;
}
function now() { return Date.now() - state.skew; }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function toast(msg, bad) {
  const t = $('toast');
  t.textContent = msg; t.className = 'toast' + (bad ? ' bad' : ''); t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

async function api(path, opts) {
  opts = opts || {};
  const headers = { 'Accept': 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.method && opts.method !== 'GET') headers['X-CSRF-Token'] = state.csrf || '';
  const r = await fetch(BASE + path, {
    method: opts.method || 'GET', credentials: 'same-origin', headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (r.status === 401 && path !== 'auth/session') { showSignIn(); throw new Error('signed out'); }
  if (r.status === 204) return null;
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.message) || `HTTP ${r.status}`);
  return body;
}

// ---------- sign in
function showSignIn() {
  if (state.es) { state.es.close(); state.es = null; }
  setLive('off', 'signed out');
  $('app').hidden = true; $('signout').hidden = true; $('signin').hidden = false;
  $('token').focus();
}
async function signedIn(info) {
  state.csrf = info.csrf;
  state.allowDestructive = !!info.allow_destructive;
  $('signin').hidden = true; $('app').hidden = false; $('signout').hidden = false;
  $('destructive-note').hidden = state.allowDestructive;
  await Promise.all([loadSessions(), loadProviders(), loadSpend(), loadGpus(false)]);
}
$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('signin-error').textContent = '';
  $('signin-btn').disabled = true;
  try {
    const info = await api('auth/session', { method: 'POST', body: { token: $('token').value } });
    $('token').value = '';
    await signedIn(info);
  } catch (e) {
    $('signin-error').textContent = e.message;
  } finally { $('signin-btn').disabled = false; }
});
$('signout').addEventListener('click', async () => {
  try { await api('auth/session', { method: 'DELETE' }); } catch (_) { /* signed out either way */ }
  state.rows.forEach((r) => r.tr.remove()); state.rows.clear();
  showSignIn();
});

// ---------- sessions
function setLive(cls, text) { const l = $('live'); l.className = 'live ' + cls; l.textContent = text; }

async function loadSessions() {
  const list = await api('v1/sessions');
  state.skew = Date.now() - Date.parse(list.as_of);
  const seen = new Set();
  for (const s of list.sessions) { upsert(s); seen.add(s.id); }
  // Sessions gone while we were not listening ended: keep them, marked.
  state.rows.forEach((r, id) => { if (!seen.has(id) && !r.ended) { r.ended = true; r.s.state = 'terminated'; } });
  render();
  follow(list.event_id);
}

function follow(lastId) {
  if (state.es) state.es.close();
  const es = new EventSource(BASE + 'v1/events?last_event_id=' + encodeURIComponent(lastId));
  state.es = es;
  es.onopen = () => setLive('on', 'live');
  es.onerror = () => setLive('off', 'reconnecting…');
  es.onmessage = (m) => {
    let ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
    onEvent(ev);
  };
}

function onEvent(ev) {
  const r = ev.session_id ? state.rows.get(ev.session_id) : null;
  switch (ev.type) {
    case 'spawned':
      api('v1/sessions/' + encodeURIComponent(ev.session_id)).then((s) => { upsert(s); render(); }).catch(() => {});
      break;
    case 'running':
      if (r) { r.running = true; if (ev.url) r.s.http_url = ev.url; }
      break;
    case 'heartbeat':
      if (r) { r.s.last_touch = ev.last_touch; r.s.idle_expires_at = new Date(Date.parse(ev.last_touch) + r.s.idle_ttl).toISOString(); }
      break;
    case 'terminating':
      if (r) { r.s.state = 'terminating'; r.s.terminate_reason = ev.reason; }
      break;
    case 'terminated':
      if (r) { r.s.state = 'terminated'; r.ended = true; r.endedAt = Date.parse(ev.at); r.spent = ev.spent_usd; r.s.terminate_reason = ev.reason; }
      break;
    case 'terminate_failed':
      if (r) { r.error = ev.error; }
      break;
    case 'lagged':
    case 'reset':
      toast('The event stream skipped ahead; reloading the session list.');
      loadSessions().catch(() => {});
      return;
    default:
      break;
  }
  render();
  scheduleSpend();
}

function upsert(s) {
  let r = state.rows.get(s.id);
  if (!r) {
    r = { s, tr: makeRow(s.id), ended: false, running: false };
    state.rows.set(s.id, r);
    $('sessions').tBodies[0].prepend(r.tr);
  } else if (!r.ended) {
    r.s = s;
  }
  if (s.http_url) r.running = true;
}

function makeRow(id) {
  const tr = el('tr');
  tr.dataset.id = id;
  for (let i = 0; i < 10; i++) tr.appendChild(el('td'));
  const cells = tr.children;
  for (const i of [5, 6, 7, 8]) cells[i].className = 'num';
  const act = el('td', 'actions');
  const touch = el('button', 'small ghost', 'Touch');
  touch.dataset.action = 'touch';
  touch.addEventListener('click', () => act_touch(id));
  const term = el('button', 'small danger', 'Terminate');
  term.dataset.action = 'terminate';
  term.addEventListener('click', () => act_terminate(id));
  act.append(touch, term);
  tr.appendChild(act);
  return tr;
}

function statusOf(r) {
  if (r.ended || r.s.state === 'terminated') return 'terminated';
  if (r.s.state === 'active') return r.running ? 'running' : 'active';
  return r.s.state;
}

function accrued(r, t) {
  if (r.ended && r.spent !== undefined) return r.spent;
  const s = r.s;
  return s.accrued_before_usd + Math.max(0, t - Date.parse(s.rate_since)) / 3600000 * s.cost_per_hour;
}

function visible(r) {
  const q = $('f-text').value.trim().toLowerCase();
  const p = $('f-provider').value, st = $('f-status').value;
  if (!$('f-ended').checked && r.ended) return false;
  if (p && r.s.provider !== p) return false;
  if (st && (st === 'terminated' ? !r.ended : r.s.state !== st || r.ended)) return false;
  if (q && !(r.s.name + ' ' + r.s.user_id + ' ' + r.s.id).toLowerCase().includes(q)) return false;
  return true;
}

function render() {
  const t = now();
  let shown = 0;
  state.rows.forEach((r) => {
    const c = r.tr.children, s = r.s, status = statusOf(r);
    const vis = visible(r);
    r.tr.hidden = !vis;
    if (!vis) return;
    shown++;
    r.tr.className = r.ended ? 'ended' : '';
    c[0].textContent = s.name; c[0].title = 'session ' + s.id + (s.compute_id ? ' · compute ' + s.compute_id : '');
    c[1].textContent = s.user_id;
    c[2].textContent = s.provider;
    c[3].textContent = s.gpu || 'cpu';
    c[4].replaceChildren(el('span', 'pill ' + status, status));
    if (s.terminate_reason) c[4].title = 'reason: ' + s.terminate_reason; else c[4].removeAttribute('title');
    if (r.error) { c[4].appendChild(el('span', 'warn', ' ⚠')); c[4].title = r.error; }
    const end = r.ended ? (r.endedAt || t) : t;
    c[5].textContent = fmtDur(Math.max(0, end - Date.parse(s.created_at)));
    if (r.ended) c[6].textContent = '–';
    else {
      const left = Math.min(Date.parse(s.idle_expires_at), Date.parse(s.runtime_expires_at)) - t;
      c[6].textContent = fmtDur(Math.max(0, left));
      c[6].className = 'num' + (left < 60000 ? ' soon' : '');
    }
    c[7].textContent = r.ended ? '–' : fmtMoney(s.cost_per_hour);
    c[8].textContent = fmtMoney(accrued(r, t), 4);
    if (s.http_url && !r.ended) {
      const a = el('a', 'url', s.http_url.replace(/^https?:\/\//, ''));
      a.href = s.http_url; a.target = '_blank'; a.rel = 'noopener noreferrer';
      c[9].replaceChildren(a);
    } else c[9].textContent = '–';
    const [touch, term] = r.tr.lastChild.children;
    touch.disabled = r.ended || s.state !== 'active';
    term.disabled = r.ended || s.state === 'terminating' || !state.allowDestructive;
    term.title = state.allowDestructive ? 'Terminate the machine and end the session' : 'Destructive actions are off (atlas serve --allow-destructive)';
  });
  $('empty').hidden = shown > 0;
  $('clock').textContent = 'updated ' + new Date().toLocaleTimeString();
}

function confirmDialog(title, text, ok) {
  return new Promise((resolve) => {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = ok;
    d.returnValue = '';
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

async function act_touch(id) {
  try { await api('v1/sessions/' + encodeURIComponent(id) + '/touch', { method: 'POST' }); toast('Touched: the idle timer starts again.'); }
  catch (e) { toast(e.message, true); }
}

async function act_terminate(id) {
  const r = state.rows.get(id);
  if (!r) return;
  const ok = await confirmDialog('Terminate session?',
    `${r.s.name} (user ${r.s.user_id}, ${r.s.provider}) will be destroyed and its billing stops. This cannot be undone.`,
    'Terminate');
  if (!ok) return;
  r.s.state = 'terminating'; render();
  try {
    await api('v1/sessions/' + encodeURIComponent(id) + '/stop', { method: 'POST' });
    r.s.state = 'terminated'; r.ended = true; r.endedAt = r.endedAt || Date.now();
    render();
    toast('Terminated ' + r.s.name + '.');
  } catch (e) { toast(e.message, true); loadSessions().catch(() => {}); }
}

// ---------- providers, spend, catalog
async function loadProviders() {
  const ps = await api('v1/providers');
  const sel = $('f-provider');
  sel.length = 1;
  for (const p of ps) sel.appendChild(new Option(p.name + (p.default ? ' (default)' : ''), p.name));
}

function scheduleSpend() {
  if (state.spendTimer) return;
  state.spendTimer = setTimeout(() => { state.spendTimer = null; loadSpend().catch(() => {}); }, 1000);
}
async function loadSpend() {
  const sp = await api('v1/spend');
  const users = Object.values(sp.users);
  $('s-sessions').textContent = users.reduce((n, u) => n + u.sessions, 0);
  $('s-rate').textContent = fmtMoney(sp.usd_per_hour) + '/h';
  $('s-total').textContent = fmtMoney(sp.total_usd, 4);
  $('s-users').textContent = users.length;
}

async function loadGpus(show) {
  try {
    const c = await api('v1/gpus');
    state.gpus = c.gpus;
    $('g-errors').textContent = c.errors.map((e) => `${e.provider}: ${e.error.message}`).join(' · ');
    renderGpus();
    if (show) toast('Catalog refreshed.');
  } catch (e) { $('g-errors').textContent = e.message; }
}
function renderGpus() {
  const q = $('g-text').value.trim().toLowerCase();
  const tb = $('gpus').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const g of state.gpus) {
    if (q && !((g.gpu || '') + ' ' + g.provider + ' ' + g.name).toLowerCase().includes(q)) continue;
    const tr = el('tr');
    const stock = g.stock || (g.available === true ? 'available' : g.available === false ? 'none' : '–');
    const cells = [g.gpu || '–', g.provider, g.name, g.memory_gb ? g.memory_gb + ' GB' : '–',
      fmtMoney(g.price_on_demand), fmtMoney(g.price_spot), fmtMoney(g.price_community), stock, g.regions.join(', ') || '–'];
    cells.forEach((v, i) => tr.appendChild(el('td', i >= 3 && i <= 6 ? 'num' : '', v)));
    if (g.available === false) tr.className = 'ended';
    frag.appendChild(tr);
  }
  tb.replaceChildren(frag);
}
$('g-text').addEventListener('input', renderGpus);
$('g-refresh').addEventListener('click', () => loadGpus(true));
for (const id of ['f-text', 'f-provider', 'f-status', 'f-ended']) $(id).addEventListener('input', render);

// ---------- start
setInterval(() => { if (!$('app').hidden) render(); }, 1000);
setInterval(() => { if (!$('app').hidden) loadSpend().catch(() => {}); }, 10000);
api('auth/session').then(signedIn).catch(showSignIn);
