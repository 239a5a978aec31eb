// The page: pick, drop or paste an image → preview, top-5 with probability bars, and (when the
// server has an index) the nearest indexed images. Plain JS, no build step, no third-party code.
// Every text from the server goes in through textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;       // GET api/model
let current = 0;        // the latest upload; answers to older ones are dropped
let previewUrl = null;

function fmtBytes(n) {
  if (n >= 1048576) return `${+(n / 1048576).toFixed(1)} MiB`;
  return n >= 1024 ? `${+(n / 1024).toFixed(1)} KiB` : `${n} bytes`;
}

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function loadModel() {
  try {
    const r = await fetch("api/model");
    model = await r.json();
  } catch (e) {
    showError("Cannot reach the server.");
    return;
  }
  $("model-name").textContent = model.model;
  $("model-classes").textContent = String(model.num_classes);
  $("model-input").textContent = model.input_size.join("×");
  if (model.index) {
    $("model-index").textContent = `${model.index.count} images` +
      (model.index.complete ? "" : " (an unfinished index: run its build again to finish it)");
    $("model-index-row").hidden = false;
  }
  $("limits").textContent = `up to ${fmtBytes(model.limits.max_upload_bytes)}, ` +
    `${(model.limits.max_pixels / 1e6).toFixed(0)} megapixels`;
  document.title = `alexnet · ${model.model}`;
  document.body.dataset.ready = "1";
}

async function postImage(url, file, k) {
  const form = new FormData();
  form.append("file", file, file.name || "upload");
  form.append("k", String(k));
  let r;
  try {
    r = await fetch(url, { method: "POST", body: form });
  } catch (e) {
    return { error: "Cannot reach the server." };
  }
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) return { error: (body && body.error) || `${r.status} ${r.statusText}` };
  return { body };
}

function renderTop(predictions) {
  const list = $("top5");
  list.replaceChildren();
  predictions.forEach((p, i) => {
    const li = document.createElement("li");
    li.className = "pred";
    li.dataset.class = p.class;
    li.dataset.prob = String(p.prob);
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = String(i + 1);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.class;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "1");
    bar.setAttribute("aria-valuenow", String(p.prob));
    bar.setAttribute("aria-label", p.class);
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(p.prob * 100).toFixed(2)}%`;
    bar.append(fill);
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = `${(p.prob * 100).toFixed(1)}%`;
    li.append(rank, name, bar, prob);
    list.append(li);
  });
  $("top-title").textContent = `Top ${predictions.length}`;
  $("top-title").hidden = predictions.length === 0;
}

function renderNeighbours(items) {
  const list = $("neighbours");
  list.replaceChildren();
  for (const n of items) {
    const li = document.createElement("li");
    li.className = "neighbour";
    const img = document.createElement("img");
    img.src = n.thumbnail;
    img.alt = n.name;
    img.loading = "lazy";
    const cls = document.createElement("span");
    cls.className = "nclass";
    cls.textContent = n.class ?? `label ${n.label}`;
    const name = document.createElement("span");
    name.className = "nname muted";
    name.textContent = n.name;
    name.title = n.name;
    const dist = document.createElement("span");
    dist.className = "ndist muted";
    dist.textContent = `#${n.rank} · ${n.distance.toPrecision(3)}`;
    li.append(img, cls, document.createElement("br"), name, dist);
    list.append(li);
  }
  $("neighbours-box").hidden = items.length === 0;
}

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  const img = $("preview");
  img.hidden = false;
  img.onerror = () => { img.hidden = true; };  // e.g. TIFF: the server reads it, the browser may not
  img.src = previewUrl;
  $("drop").classList.add("has-image");
}

async function classify(file) {
  const seq = ++current;
  showError("");
  renderTop([]);
  renderNeighbours([]);
  document.body.dataset.state = "busy";
  $("image-info").textContent = `${file.name || "pasted image"} · ${fmtBytes(file.size)}`;
  if (model && file.size > model.limits.max_upload_bytes) {
    showError(`That file is ${fmtBytes(file.size)}; the server accepts up to ${fmtBytes(model.limits.max_upload_bytes)}.`);
    setStatus("");
    document.body.dataset.state = "error";
    return;
  }
  showPreview(file);
  setStatus("Classifying…");
  const wantNeighbours = !!(model && model.index);
  const [pred, near] = await Promise.all([
    postImage("api/predict", file, 5),
    wantNeighbours ? postImage("api/neighbours", file, 8) : Promise.resolve(null),
  ]);
  if (seq !== current) return;
  if (pred.error) {
    showError(pred.error);
    setStatus("");
    document.body.dataset.state = "error";
    return;
  }
  const im = pred.body.image || {};
  if (im.width) {
    $("image-info").textContent = `${file.name || "pasted image"} · ${im.format} ${im.width}×${im.height} · ${fmtBytes(file.size)}`;
  }
  renderTop(pred.body.predictions);
  if (near && near.body) renderNeighbours(near.body.neighbours);
  else if (near && near.error) showError(`Neighbours: ${near.error}`);
  setStatus(`${pred.body.model} · ${pred.body.ms.toFixed(0)} ms`);
  document.body.dataset.state = "done";
}

function setup() {
  const drop = $("drop");
  const input = $("file");
  input.addEventListener("change", () => {
    if (input.files && input.files.length) classify(input.files[0]);
    input.value = "";  // choosing the same file again still fires "change"
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files;
    if (f && f.length) classify(f[0]);
  });
  // A file dropped beside the drop zone must not make the browser navigate away to it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  document.addEventListener("paste", (e) => {
    const f = e.clipboardData && e.clipboardData.files;
    if (f && f.length) classify(f[0]);
  });
  $("origin").textContent = window.location.origin;
  loadModel();
}

setup();
