// Silverset studio single-page UI: search, label with the keyboard, feeds, live scores, bandit batches, the stop rule,
// a review tab of every label (with edit), the teacher gate's disagreements, golden-set and classifier export.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { attribute: null, view: "search", cards: [], focus: 0, feeds: {}, ready: false, revisions: {}, user: null, csrf: null,
                review: [], teacher: null, teacherAscending: false };
const LIST_VIEWS = ["review", "teacher"];

// The one way data reaches the page: elements built with createElement, attributes set with setAttribute and
// text as text nodes. No HTML string is ever assembled, so a title, video id or key can never become markup.
function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value == null || value === false) continue;
    if (/^on/i.test(name)) throw new Error(`h(): event handler attribute '${name}'; use addEventListener`);
    element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

async function api(method, path, body) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (state.csrf && method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined,
                                       credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return data;
}
function say(text) { $("message").textContent = text || ""; }
function labeler() { return state.user ? state.user.user : ""; }
function attributePath(suffix) { return `/api/attributes/${encodeURIComponent(state.attribute)}${suffix || ""}`; }

async function loadAttributes(select) {
  const attributes = await api("GET", "/api/attributes");
  $("attribute").replaceChildren(...attributes.map((a) => h("option", { value: a.key }, `${a.key} — ${a.title}`)));
  if (select) $("attribute").value = select;
  state.attribute = $("attribute").value || null;
  if (state.attribute) await refresh();
}

async function refreshLabels() {
  const labels = await api("GET", attributePath("/labels"));
  state.revisions = {};
  for (const l of labels) if (l.labeler === labeler()) state.revisions[l.video_id] = l;
}

function showScores(s) {
  $("positives").textContent = s.positives; $("negatives").textContent = s.negatives;
  $("quality").textContent = s.quality == null ? "—" : s.quality.toFixed(3);
  $("diversity").textContent = s.diversity.toFixed(3);
  $("disagreements").textContent = s.disagreements;
  $("policy").value = s.policy;
  state.ready = s.feeds_ready;
  document.querySelectorAll("[data-feed]").forEach((b) => (b.disabled = !s.feeds_ready));
  $("bandit").disabled = !s.feeds_ready;
  $("feeds-status").textContent = s.feeds_ready ? "Feeds are open: the model retrains as you label."
    : `Feeds open at ${s.needed_per_class} positives and ${s.needed_per_class} negatives.`;
  $("export-model").disabled = !s.feeds_ready;
  showStop(s.stop);
}

// The stop rule (both scores >= threshold, or max_labels labels): a banner once reached, the progress otherwise.
function showStop(stop) {
  if (!stop) { $("stop-banner").hidden = true; $("stop-status").textContent = ""; return; }
  $("stop-banner").hidden = !stop.reached;
  $("stop-banner").textContent = stop.reached ? `Enough labels: ${stop.reason}. Export the golden set.` : "";
  $("stop-status").textContent = `Stop rule: quality and diversity ≥ ${stop.threshold}, or ${stop.max_labels} labels ` +
    `(${stop.labels} now). ${stop.reached ? "Reached." : stop.reason}`;
}

async function refresh() {
  if (!state.attribute) return;
  await refreshLabels();
  showScores(await api("GET", attributePath()));
}

function card(c, i) {
  const mine = state.revisions[c.video_id];
  const classes = ["card", mine ? mine.label : "", i === state.focus ? "focus" : ""].filter(Boolean).join(" ");
  const thumbs = c.frames.map((f) => h("img", { alt: "", src: `/api/videos/${encodeURIComponent(c.video_id)}/frames/${encodeURIComponent(f)}.jpg` }));
  const p = c.probability == null ? "" : ` · p=${c.probability.toFixed(2)}`;
  const sim = c.similarity == null ? "" : ` · sim=${c.similarity.toFixed(2)}`;
  return h("div", { class: classes, "data-testid": "card", "data-video": c.video_id, "data-index": i },
    h("div", { class: "thumbs" }, thumbs), h("h3", {}, c.title), h("p", { class: "desc" }, c.description || ""),
    h("p", { class: "meta" }, `${c.video_id}${p}${sim}`),
    h("div", { class: "actions" }, h("button", { "data-act": "positive" }, "+ positive"),
      h("button", { "data-act": "negative" }, "− negative"), h("button", { "data-act": "skip" }, "skip")));
}

function render() {
  const list = LIST_VIEWS.includes(state.view);
  $("cards").hidden = list; $("review").hidden = state.view !== "review"; $("teacher").hidden = state.view !== "teacher";
  $("cards").replaceChildren(...(list ? [] : state.cards.map(card)));
  if (state.view === "review") renderReview();
  if (state.view === "teacher") renderTeacher();
  document.querySelectorAll("#tabs button[data-view]").forEach((b) => b.classList.toggle("active", b.dataset.view === state.view));
}

function thumbnails(videoId, frames, count) {
  return frames.slice(0, count).map((f) => h("img", { alt: "", src: `/api/videos/${encodeURIComponent(videoId)}/frames/${encodeURIComponent(f)}.jpg` }));
}

// ---- review tab: every label of the attribute, filterable, with edit of the signed-in user's own label ----
async function showReview() {
  if (!state.attribute) return;
  try {
    state.review = await api("GET", attributePath("/review"));
    state.cards = []; state.view = "review"; render();
  } catch (e) { say(e.message); }
}

function reviewMatches(item) {
  const text = $("review-filter").value.trim().toLowerCase();
  const haystack = [item.video_id, item.title, ...item.labels.map((l) => l.labeler)].join(" ").toLowerCase();
  if (text && !haystack.includes(text)) return false;
  const values = new Set(item.labels.map((l) => l.label).filter((v) => v !== "skip"));
  switch ($("review-show").value) {
    case "mine": return item.labels.some((l) => l.labeler === labeler());
    case "split": return values.size > 1;
    case "unresolved": return item.resolved == null;
    case "positive": case "negative": return item.resolved === $("review-show").value;
    default: return true;
  }
}

function renderReview() {
  const shown = state.review.filter(reviewMatches);
  $("review-count").textContent = `${shown.length} of ${state.review.length} videos`;
  $("review-rows").replaceChildren(...shown.map((item) => {
    const mine = item.labels.find((l) => l.labeler === labeler());
    const values = new Set(item.labels.map((l) => l.label).filter((v) => v !== "skip"));
    const labels = item.labels.map((l) => h("li", { "data-labeler": l.labeler },
      `${l.labeler}: ${l.label} (${l.source}, r${l.revision})`));
    if (item.adjudication) labels.push(h("li", { class: "adjudication" }, `adjudicated ${item.adjudication.label} by ${item.adjudication.adjudicator}`));
    const edit = ["positive", "negative", "skip"].map((v) => h("button", { type: "button", "data-edit": v,
      "aria-pressed": mine && mine.label === v ? "true" : "false" }, v));
    return h("tr", { "data-testid": "review-row", "data-video": item.video_id, class: values.size > 1 ? "split" : "" },
      h("td", { class: "thumbs" }, thumbnails(item.video_id, item.frames, 2)),
      h("td", {}, h("div", {}, item.title), h("div", { class: "vid" }, item.video_id)),
      h("td", {}, h("ul", { class: "labels" }, labels)),
      h("td", { "data-testid": "resolved" }, item.resolved == null ? `— (${item.how})` : `${item.resolved} (${item.how})`),
      h("td", {}, new Date(item.updated_at).toLocaleString()),
      h("td", { "data-testid": "mine" }, h("div", {}, mine ? `${mine.label} (r${mine.revision})` : "—"), edit));
  }));
}

async function editReview(videoId, value) {
  if (!labeler()) { say("Sign in first."); return; }
  const item = state.review.find((i) => i.video_id === videoId);
  const mine = item && item.labels.find((l) => l.labeler === labeler());
  try {
    const out = await api("POST", attributePath("/labels"), { video_id: videoId, label: value, source: "review",
                                                                expected_revision: mine ? mine.revision : 0 });
    showScores(out.state);
    say(`${videoId}: your label is now ${out.label.label}`);
  } catch (e) { say(e.message.startsWith("409") ? `${e.message} — the list is reloaded with the current labels` : e.message); }
  await refreshLabels();
  await showReview();
}

// ---- the teacher gate's disagreements with the golden set (from the latest pipeline run under the workdir) ----
async function showTeacher() {
  if (!state.attribute) return;
  try {
    state.teacher = await api("GET", attributePath("/teacher-disagreements"));
    state.cards = []; state.view = "teacher"; render();
  } catch (e) { say(e.message); }
}

function renderTeacher() {
  const t = state.teacher || { found: false, items: [], message: "" };
  $("teacher-source").textContent = t.found
    ? `${t.items.length} golden items where the teacher and the resolved label differ, from ${t.path} ` +
      `(${t.attribute}@v${t.attribute_version}${t.same_version ? "" : ", another version than this attribute"})`
    : t.message;
  $("teacher-sort").textContent = state.teacherAscending ? "most confident first" : "least confident first";
  const items = [...t.items].sort((a, b) => (state.teacherAscending ? 1 : -1) * (a.confidence - b.confidence)
                                        || a.video_id.localeCompare(b.video_id));
  $("teacher-rows").replaceChildren(...items.map((item) => h("tr", { "data-testid": "teacher-row", "data-video": item.video_id,
      "data-confidence": item.confidence },
    h("td", { class: "thumbs" }, thumbnails(item.video_id, item.frames, 3)),
    h("td", {}, h("div", { class: "title" }, item.title || ""), h("div", { class: "vid" }, item.video_id)),
    h("td", {}, item.teacher_label), h("td", {}, item.teacher_probability.toFixed(3)), h("td", {}, item.confidence.toFixed(3)),
    h("td", {}, item.resolved_label),
    h("td", {}, Object.entries(item.votes).map(([rater, vote]) => `${rater}: ${vote}`).join(", ") || "—"),
    h("td", { class: "rationale" }, item.rationale || ""))));
}

async function label(index, value) {
  const card = state.cards[index];
  if (!card) return;
  if (!labeler()) { say("Sign in first."); return; }
  const seen = state.revisions[card.video_id];
  try {
    const out = await api("POST", attributePath("/labels"), { video_id: card.video_id, label: value,
      source: state.view === "search" ? "search" : (card.source || state.view), expected_revision: seen ? seen.revision : 0 });
    state.revisions[card.video_id] = out.label;
    showScores(out.state);
    say("");
  } catch (e) { say(e.message); await refreshLabels(); }
  state.focus = Math.min(index + 1, state.cards.length - 1);
  render();
}

async function search(event) {
  if (event) event.preventDefault();
  const q = $("query").value.trim();
  if (!q || !state.attribute) return;
  try {
    state.cards = await api("GET", attributePath(`/search?q=${encodeURIComponent(q)}&limit=24`));
    state.view = "search"; state.focus = 0; render(); $("query").blur();
    $("cards").dataset.query = q;  // tells a watcher (and the browser test) which search is on screen
  } catch (e) { say(e.message); }
}

async function showFeed(feed) {
  if (!state.ready) return;
  const out = await api("GET", attributePath("/feeds"));
  state.feeds = out.feeds; state.view = feed; state.cards = out.feeds[feed] || []; state.focus = 0; render();
}

async function banditBatch() {
  if (!state.ready) return;
  try {
    const out = await api("POST", attributePath("/next-batch"));
    state.view = out.feed; state.cards = out.videos; state.focus = 0; render();
    say(`Suggested by ${out.policy}: ${out.feed}`);
  } catch (e) { say(e.message); }
}

async function exportModel() {
  try {
    const out = await api("POST", attributePath("/export-model"), {});
    $("export-model-result").textContent = `Student candidate ${out.model_digest.slice(0, 12)} (${out.trained_on} labels) in ${out.model_dir}; ` +
      "run silverset score and evaluate --gate student on it";
  } catch (e) { say(e.message); }
}

async function exportGolden() {
  try {
    const out = await api("POST", attributePath("/export"), {});
    $("export-result").textContent = `Exported ${out.rows} videos (${out.positives}+ / ${out.negatives}−, ${out.errors} unresolved) to ${out.path}`;
  } catch (e) { say(e.message); }
}

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (typing) { if (event.key === "Escape") document.activeElement.blur(); return; }
  const keys = { p: "positive", y: "positive", n: "negative", s: "skip" };
  if (keys[event.key]) { label(state.focus, keys[event.key]); }
  else if (event.key === "/") { event.preventDefault(); $("query").focus(); }
  else if (event.key === "ArrowRight" || event.key === "j") { state.focus = Math.min(state.focus + 1, state.cards.length - 1); render(); }
  else if (event.key === "ArrowLeft" || event.key === "k") { state.focus = Math.max(state.focus - 1, 0); render(); }
  else if (["1", "2", "3", "4"].includes(event.key)) { showFeed(["top_positive", "top_negative", "borderline", "random"][+event.key - 1]); }
  else if (event.key === "b") { banditBatch(); }
  else if (event.key === "r") { showReview(); }
  else if (event.key === "t") { showTeacher(); }
  else if (event.key === "e") { exportGolden(); }
  else return;
  event.preventDefault();
});

$("cards").addEventListener("click", (event) => {
  const act = event.target.dataset.act;
  const card = event.target.closest(".card");
  if (card) { state.focus = +card.dataset.index; if (act) label(state.focus, act); else render(); }
});
$("search-form").addEventListener("submit", search);
document.querySelectorAll("#tabs button[data-feed]").forEach((b) => b.addEventListener("click", () => showFeed(b.dataset.view)));
$("bandit").addEventListener("click", banditBatch);
$("export").addEventListener("click", exportGolden);
$("export-model").addEventListener("click", exportModel);
document.querySelector('#tabs button[data-view="review"]').addEventListener("click", showReview);
document.querySelector('#tabs button[data-view="teacher"]').addEventListener("click", showTeacher);
$("review-controls").addEventListener("submit", (event) => event.preventDefault());
$("review-filter").addEventListener("input", renderReview);
$("review-show").addEventListener("change", renderReview);
$("review-rows").addEventListener("click", (event) => {
  const value = event.target.dataset.edit;
  const row = event.target.closest("tr");
  if (value && row) editReview(row.dataset.video, value);
});
$("teacher-sort").addEventListener("click", () => { state.teacherAscending = !state.teacherAscending; renderTeacher(); });
$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", async () => { await api("DELETE", "/api/session"); location.reload(); });
$("attribute").addEventListener("change", async () => {
  state.attribute = $("attribute").value; state.cards = []; render(); await refresh();
  if (state.view === "review") await showReview();
  if (state.view === "teacher") await showTeacher();
});
$("policy").addEventListener("change", async () => { try { await api("PUT", attributePath("/policy"), { policy: $("policy").value }); } catch (e) { say(e.message); } });
$("example").addEventListener("change", async () => {
  const name = $("example").value;
  if (!name) return;
  try { const a = await api("POST", "/api/attributes", { example: name, policy: $("policy").value || "ucb" }); await loadAttributes(a.key); }
  catch (e) { say(e.message); }
  $("example").value = "";
});

function showUser(methods) {
  $("signin-form").hidden = !!state.user || (methods ? !methods.password : false);
  $("sso").hidden = !!state.user || !(methods && methods.oidc);
  $("whoami").hidden = !state.user;
  $("user").textContent = state.user ? `${state.user.user} (${state.user.role})` : "";
  $("signout").hidden = !state.user || state.user.local;
}

async function signIn(event) {
  event.preventDefault();
  const secret = $("secret").value;
  const body = { user: $("signin-user").value.trim() };
  body[$("secret-kind").value] = secret;
  try { await api("POST", "/api/session", body); $("secret").value = ""; await start(); }
  catch (e) { say(e.message); }
}

async function start() {
  try { state.user = await api("GET", "/api/me"); }
  catch (e) {
    state.user = null;
    showUser(await api("GET", "/auth/methods").catch(() => null));
    say("Sign in to label.");
    return;
  }
  state.csrf = state.user.csrf_token;
  showUser(); say("");
  const examples = await api("GET", "/api/examples");
  $("example").replaceChildren(h("option", { value: "" }, "—"), ...examples.map((e) => h("option", { value: e }, e)));
  await loadAttributes();
}

start();
